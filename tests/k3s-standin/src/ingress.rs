//! A small ingress controller in place of k3s's Traefik: HTTP on the server's port 80, routing
//! by the Ingress objects' host and path rules (Exact, Prefix; ImplementationSpecific as
//! Prefix; the longest match wins) to a ready endpoint of the backend Service, reached over the
//! pod network. No rule: 404 `404 page not found`; no ready endpoint: 503, as Traefik answers.
//! Not started when `disable: traefik` is set, as k3s then runs no ingress controller.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::api::State;
use crate::resources;
use crate::store::{namespace_of, FieldSelector, Selector};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Serves HTTP on `listener` for the Ingress objects of the store.
pub async fn serve(state: Arc<State>, listener: tokio::net::TcpListener) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| route(state.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

fn text(code: u16, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    r
}

fn path_matches(kind: &str, rule: &str, path: &str) -> bool {
    match kind {
        "Exact" => rule == path,
        _ => {
            let rule = rule.trim_end_matches('/');
            rule.is_empty() || path == rule || path.starts_with(&format!("{rule}/"))
        }
    }
}

fn host_matches(rule: &str, host: &str) -> bool {
    if rule.is_empty() {
        return true;
    }
    match rule.strip_prefix("*.") {
        Some(suffix) => host.split_once('.').is_some_and(|(_, rest)| rest == suffix),
        None => rule == host,
    }
}

/// The endpoint address (`ip:port`) for the backend `service` port of namespace `ns`.
fn endpoint(state: &State, ns: &str, backend: &Value) -> Result<String, (u16, &'static str)> {
    let store = state
        .store
        .as_ref()
        .and_then(|m| m.lock().ok())
        .ok_or((503, "Service Unavailable"))?;
    let svc_name = backend["service"]["name"].as_str().unwrap_or_default();
    let svc = store
        .get(
            resources::by_name("services").ok_or((503, "Service Unavailable"))?,
            ns,
            svc_name,
        )
        .map_err(|_| (503, "Service Unavailable"))?;
    let port = &backend["service"]["port"];
    let svc_port = svc["spec"]["ports"].as_array().and_then(|ps| {
        ps.iter()
            .find(|p| {
                (port["number"].is_number() && p["port"] == port["number"])
                    || (port["name"].is_string() && p["name"] == port["name"])
            })
            .cloned()
    });
    let Some(svc_port) = svc_port else {
        return Err((503, "Service Unavailable"));
    };
    let ep = store
        .get(
            resources::by_name("endpoints").ok_or((503, "Service Unavailable"))?,
            ns,
            svc_name,
        )
        .map_err(|_| (503, "Service Unavailable"))?;
    let wanted = svc_port["name"].as_str().unwrap_or_default();
    let mut candidates = Vec::new();
    for subset in ep["subsets"].as_array().cloned().unwrap_or_default() {
        let Some(p) = subset["ports"].as_array().and_then(|ps| {
            ps.iter()
                .find(|p| p["name"].as_str().unwrap_or_default() == wanted)
                .cloned()
        }) else {
            continue;
        };
        for a in subset["addresses"].as_array().cloned().unwrap_or_default() {
            if let (Some(ip), Some(port)) = (a["ip"].as_str(), p["port"].as_i64()) {
                candidates.push(format!("{ip}:{port}"));
            }
        }
    }
    if candidates.is_empty() {
        return Err((503, "Service Unavailable"));
    }
    Ok(candidates[NEXT.fetch_add(1, Ordering::Relaxed) % candidates.len()].clone())
}

async fn route(
    state: Arc<State>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(|h| h.rsplit_once(':').map(|(h, _)| h).unwrap_or(h).to_string())
        .unwrap_or_default();
    let path = req.uri().path().to_string();
    let target = {
        let Some(store) = state.store.as_ref().and_then(|m| m.lock().ok()) else {
            return Ok(text(503, "Service Unavailable"));
        };
        let Some(ing) = resources::by_name("ingresses") else {
            return Ok(text(404, "404 page not found"));
        };
        let mut best: Option<(usize, String, Value)> = None;
        for i in store.list(ing, None, &Selector::default(), &FieldSelector::default()) {
            let ns = namespace_of(&i).to_string();
            for rule in i["spec"]["rules"].as_array().cloned().unwrap_or_default() {
                if !host_matches(rule["host"].as_str().unwrap_or_default(), &host) {
                    continue;
                }
                for p in rule["http"]["paths"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                {
                    let rp = p["path"].as_str().unwrap_or("/");
                    if path_matches(p["pathType"].as_str().unwrap_or("Prefix"), rp, &path)
                        && best.as_ref().is_none_or(|b| rp.len() > b.0)
                    {
                        best = Some((rp.len(), ns.clone(), p["backend"].clone()));
                    }
                }
            }
            if best.is_none() && i["spec"]["defaultBackend"].is_object() {
                best = Some((0, ns, i["spec"]["defaultBackend"].clone()));
            }
        }
        best
    };
    let Some((_, ns, backend)) = target else {
        return Ok(text(404, "404 page not found"));
    };
    let addr = match endpoint(&state, &ns, &backend) {
        Ok(a) => a,
        Err((code, msg)) => return Ok(text(code, msg)),
    };
    Ok(forward(&addr, req).await.unwrap_or_else(|e| {
        crate::log::info(format!("ingress: {addr}: {e}"));
        text(502, "Bad Gateway")
    }))
}

async fn forward(
    addr: &str,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, String> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut out = Request::builder().method(parts.method).uri(
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/"),
    );
    for (k, v) in parts.headers.iter() {
        out = out.header(k, v);
    }
    let out = out.body(Full::new(body)).map_err(|e| e.to_string())?;
    let resp = sender.send_request(out).await.map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    let mut r = Response::from_parts(parts, Full::new(body));
    r.headers_mut().remove("transfer-encoding");
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_as_ingress_rules_do() {
        assert!(path_matches("Prefix", "/app", "/app/x"));
        assert!(path_matches("Prefix", "/", "/anything"));
        assert!(!path_matches("Prefix", "/app", "/apple"));
        assert!(path_matches("Exact", "/app", "/app"));
        assert!(!path_matches("Exact", "/app", "/app/"));
        assert!(host_matches("*.site.internal", "web.site.internal"));
        assert!(!host_matches("*.site.internal", "site.internal"));
        assert!(host_matches("", "anything"));
    }
}
