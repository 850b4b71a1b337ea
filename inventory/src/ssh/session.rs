//! One authenticated SSH connection to one host, and the commands run over it.
//!
//! Every remote call has a deadline, so a hung command never hangs ferry: [`Session::exec`]
//! and its kin end when the whole command takes longer than the session's deadline
//! ([`SessionOptions::command_timeout`], 15 minutes unless set); a [`Session::spawn`]ed command
//! streams for as long as bytes move, and ends when nothing moved either way for that long. A
//! step known to take longer (an image import, a package install) asks for its own deadline:
//! `session.with_deadline(Duration::from_secs(3600)).exec_ok(cmd, true)`.

use std::borrow::Cow;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use russh::client::{self, Handle, KeyboardInteractiveAuthResponse};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::{oneshot, watch};
use tokio::time::{timeout, timeout_at, Instant};

use super::known_hosts::{Accepted, HostKeyPolicy, KnownHosts, KnownHostsError};
use super::log::HostLog;
use super::{shell_quote, SshError};
use crate::target::{Auth, Secret, Sudo, Target};

/// How long one remote command may take unless the session or the caller says otherwise.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A host key ferry has just recorded for the first time (trust on first use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHostKey {
    /// The host's inventory name.
    pub host: String,
    /// Its known_hosts entry name (scoped by its jump host's key when it has one).
    pub entry: String,
    /// The key as an operator compares it: `ED25519 SHA256:...`.
    pub key: String,
    /// The known_hosts file it was recorded in.
    pub file: PathBuf,
}

impl NewHostKey {
    /// The line shown to the operator.
    pub fn message(&self) -> String {
        format!(
            "{}: first contact, trusting host key {} of {} (recorded in {}; \
             --strict-host-keys refuses unknown keys instead)",
            self.host,
            self.key,
            self.entry,
            self.file.display()
        )
    }
}

/// Who is told about newly trusted host keys. The default prints [`NewHostKey::message`] on
/// stderr: a first contact must never pass unseen.
#[derive(Clone)]
pub struct KeyNotice(Arc<dyn Fn(&NewHostKey) + Send + Sync>);

impl KeyNotice {
    /// Calls `f` for each newly recorded key.
    pub fn new(f: impl Fn(&NewHostKey) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Prints each newly recorded key on stderr.
    pub fn stderr() -> Self {
        Self::new(|k| eprintln!("{}", k.message()))
    }
}

impl Default for KeyNotice {
    fn default() -> Self {
        Self::stderr()
    }
}

impl std::fmt::Debug for KeyNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyNotice")
    }
}

/// How sessions connect. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// ferry's known_hosts.
    pub known_hosts: Arc<KnownHosts>,
    /// Unknown host keys: recorded on first use (the default) or refused.
    pub host_keys: HostKeyPolicy,
    /// Told about each host key recorded on first use.
    pub on_new_host_key: KeyNotice,
    /// Bound on TCP connect plus SSH handshake, per attempt.
    pub connect_timeout: Duration,
    /// Bound on authentication.
    pub auth_timeout: Duration,
    /// The deadline of one remote command (see the module doc); a caller may ask for another
    /// with [`Session::with_deadline`].
    pub command_timeout: Duration,
    /// Keepalive interval; three unanswered keepalives close the connection.
    pub keepalive_interval: Duration,
    /// Connection attempts on transient errors (at least 1).
    pub attempts: u32,
    /// First retry delay; doubles each retry.
    pub backoff: Duration,
    /// Directory for per-host logs (`HOST.log`); `None` logs nothing.
    pub run_dir: Option<PathBuf>,
    /// Handshakes a [`super::Pool`] runs at once against one sshd (a jump host counts as one
    /// for all hosts behind it). Keep it below the servers' `MaxStartups` start value.
    pub handshakes_per_sshd: usize,
}

impl SessionOptions {
    /// Defaults: unknown host keys recorded (and printed), 10 s connect, 30 s auth, 15 min per
    /// command, keepalive every 15 s, 3 attempts from 500 ms backoff, 6 handshakes at once per
    /// sshd.
    pub fn new(known_hosts: impl Into<PathBuf>) -> Self {
        Self {
            known_hosts: Arc::new(KnownHosts::new(known_hosts)),
            host_keys: HostKeyPolicy::AcceptNew,
            on_new_host_key: KeyNotice::default(),
            connect_timeout: Duration::from_secs(10),
            auth_timeout: Duration::from_secs(30),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            keepalive_interval: Duration::from_secs(15),
            attempts: 3,
            backoff: Duration::from_millis(500),
            run_dir: None,
            handshakes_per_sshd: super::pool::HANDSHAKES_PER_SSHD,
        }
    }

    fn client_config(&self) -> client::Config {
        client::Config {
            keepalive_interval: Some(self.keepalive_interval),
            keepalive_max: 3,
            nodelay: true,
            // Large windows keep a single upload stream busy on fast links.
            window_size: 16 * 1024 * 1024,
            preferred: russh::Preferred {
                // AES-GCM runs on AES-NI through ring and is the fastest here (see
                // docs/perf-ssh.md); ChaCha20 for hosts without it.
                cipher: Cow::Borrowed(&[
                    russh::cipher::AES_256_GCM,
                    russh::cipher::AES_128_GCM,
                    russh::cipher::CHACHA20_POLY1305,
                    russh::cipher::AES_256_CTR,
                    russh::cipher::AES_128_CTR,
                ]),
                compression: Cow::Borrowed(&[russh::compression::NONE]),
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

/// Checks the server's key against ferry's known_hosts, remembers the key it saw and why it
/// refused.
struct Client {
    host: String,
    /// The known_hosts entry; `None` only scans (the key is kept, the connection refused).
    entry: Option<String>,
    known: Arc<KnownHosts>,
    policy: HostKeyPolicy,
    notice: KeyNotice,
    seen: Arc<Mutex<Option<PublicKey>>>,
    refusal: Arc<Mutex<Option<SshError>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let refuse = |e: SshError| {
            *self.refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            Ok(false)
        };
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return refuse(SshError::HostCertificate {
                host: self.host.clone(),
            });
        };
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(key.clone());
        let Some(entry) = &self.entry else {
            return Ok(false);
        };
        match self.known.check_or_record(entry, key, self.policy) {
            Ok(Accepted::Known) => Ok(true),
            Ok(Accepted::Recorded) => {
                (self.notice.0)(&NewHostKey {
                    host: self.host.clone(),
                    entry: entry.clone(),
                    key: KnownHosts::describe(key),
                    file: self.known.path().to_path_buf(),
                });
                Ok(true)
            }
            Err(KnownHostsError::Unknown { entry, key }) => refuse(SshError::UnknownHostKey {
                host: self.host.clone(),
                entry,
                key,
            }),
            Err(cause) => refuse(SshError::HostKey {
                host: self.host.clone(),
                cause,
            }),
        }
    }
}

/// An authenticated connection to one host. Channels (commands, tunnels) open concurrently on it.
pub struct Session {
    name: String,
    user: String,
    sudo: Sudo,
    handle: Handle<Client>,
    log: Option<Arc<HostLog>>,
    next_id: AtomicU64,
    deadline: Duration,
    /// The fingerprint of the host's key (names the hosts reached through this one).
    host_key: String,
    // A session through a jump host keeps the jump host's session alive.
    _via: Option<Arc<Session>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("host", &self.name)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Connects and authenticates, through the target's jump host if it has one (a jump host
    /// connection made here is not shared; [`super::Pool`] shares them).
    pub async fn connect(target: &Target, opts: &SessionOptions) -> Result<Session, SshError> {
        let via = match &target.bastion {
            Some(b) => Some(Arc::new(
                Box::pin(Session::connect(b, opts))
                    .await
                    .map_err(|e| bastion_error(target, e))?,
            )),
            None => None,
        };
        Self::connect_via(target, via, opts).await
    }

    /// Connects through `via` (a session to the target's jump host) or directly, retrying
    /// transient failures with exponential backoff.
    pub async fn connect_via(
        target: &Target,
        via: Option<Arc<Session>>,
        opts: &SessionOptions,
    ) -> Result<Session, SshError> {
        let mut delay = opts.backoff;
        let mut attempt = 1;
        loop {
            match Self::connect_once(target, via.clone(), opts).await {
                Ok(s) => return Ok(s),
                Err(e) if e.is_transient() && attempt < opts.attempts.max(1) => {
                    tracing::warn!(host = %target.name, attempt, "transient: {e}; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The known_hosts entry of `target` reached through `via`: its address and port, scoped
    /// by the jump host's key when there is one.
    pub fn known_hosts_entry(target: &Target, via: Option<&Session>) -> String {
        KnownHosts::scoped_entry_name(
            &target.address,
            target.port,
            via.map(|v| v.host_key.as_str()),
        )
    }

    /// The key `target` offers, without checking or recording it and without logging in (an
    /// ssh-keyscan through `via` when given): what `ferry inventory trust` shows and records.
    pub async fn scan_host_key(
        target: &Target,
        via: Option<&Session>,
        opts: &SessionOptions,
    ) -> Result<PublicKey, SshError> {
        let seen = Arc::new(Mutex::new(None));
        let refusal = Arc::new(Mutex::new(None));
        let handler = Client {
            host: target.name.clone(),
            entry: None,
            known: opts.known_hosts.clone(),
            policy: opts.host_keys,
            notice: opts.on_new_host_key.clone(),
            seen: seen.clone(),
            refusal: refusal.clone(),
        };
        let res = handshake(target, via, opts, handler, &refusal).await;
        if let Some(key) = seen.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Ok(key);
        }
        match res {
            Err(e) => Err(e),
            Ok(_) => Err(SshError::Protocol {
                host: target.name.clone(),
                addr: format!("{}:{}", target.address, target.port),
                cause: Box::new(russh::Error::UnknownKey),
            }),
        }
    }

    async fn connect_once(
        target: &Target,
        via: Option<Arc<Session>>,
        opts: &SessionOptions,
    ) -> Result<Session, SshError> {
        let host = target.name.clone();
        let addr = format!("{}:{}", target.address, target.port);
        let seen = Arc::new(Mutex::new(None));
        let refusal = Arc::new(Mutex::new(None));
        let handler = Client {
            host: host.clone(),
            entry: Some(Self::known_hosts_entry(target, via.as_deref())),
            known: opts.known_hosts.clone(),
            policy: opts.host_keys,
            notice: opts.on_new_host_key.clone(),
            seen: seen.clone(),
            refusal: refusal.clone(),
        };
        let mut handle = handshake(target, via.as_deref(), opts, handler, &refusal).await?;
        timeout(opts.auth_timeout, authenticate(&mut handle, target))
            .await
            .map_err(|_| SshError::AuthTimeout {
                host: host.clone(),
                secs: opts.auth_timeout.as_secs(),
            })??;
        let log = match &opts.run_dir {
            Some(dir) => Some(Arc::new(HostLog::open(dir, &target.name)?)),
            None => None,
        };
        let host_key = seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(KnownHosts::fingerprint)
            .unwrap_or_default();
        tracing::debug!(host = %target.name, %addr, "connected");
        Ok(Session {
            name: target.name.clone(),
            user: target.user.clone(),
            sudo: target.sudo.clone(),
            handle,
            log,
            next_id: AtomicU64::new(1),
            deadline: opts.command_timeout,
            host_key,
            _via: via,
        })
    }

    /// The host's inventory name.
    pub fn host(&self) -> &str {
        &self.name
    }

    /// The login user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The SHA256 fingerprint of the key this host presented.
    pub fn host_key_fingerprint(&self) -> &str {
        &self.host_key
    }

    /// True while the connection is up.
    pub fn is_open(&self) -> bool {
        !self.handle.is_closed()
    }

    /// The deadline of one command run through the plain methods ([`Session::exec`], ...).
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The same session with another deadline for the commands run through the view: for a
    /// step known to take long, `session.with_deadline(Duration::from_secs(3600)).exec_ok(..)`,
    /// or a short one for a probe that must answer quickly.
    pub fn with_deadline(&self, limit: Duration) -> Deadline<'_> {
        Deadline {
            session: self,
            limit,
        }
    }

    /// Opens a TCP tunnel from the host to `address:port` (as seen from the host).
    pub async fn tunnel(
        &self,
        address: &str,
        port: u16,
    ) -> Result<russh::ChannelStream<client::Msg>, SshError> {
        let command = format!("tunnel to {address}:{port}");
        let open = self
            .handle
            .channel_open_direct_tcpip(address, u32::from(port), "127.0.0.1", 0);
        match timeout(self.deadline, open).await {
            Ok(r) => r
                .map(|c| c.into_stream())
                .map_err(|cause| SshError::Channel {
                    host: self.name.clone(),
                    command,
                    cause: Box::new(cause),
                }),
            Err(_) => Err(self.timed_out(&command, self.deadline, false)),
        }
    }

    /// Starts `command` (a shell command line) and returns its streams. With `as_root`, runs it
    /// through sudo as the target's sudo setting says; a sudo password goes on stdin, is
    /// never in argv or the log, and never reaches the command. The command is stopped when
    /// nothing moves on its streams for the session's deadline.
    pub async fn spawn(&self, command: &str, as_root: bool) -> Result<RemoteChild, SshError> {
        self.with_deadline(self.deadline)
            .spawn(command, as_root)
            .await
    }

    /// Like [`Session::spawn`], but the host log gets only the command, its stderr and how
    /// many bytes it printed on stdout, never the stdout itself. For channels that carry data
    /// which must not land on disk in clear: the agent protocol (file contents, facts with
    /// machine-id and serial numbers).
    pub async fn spawn_unlogged(
        &self,
        command: &str,
        as_root: bool,
    ) -> Result<RemoteChild, SshError> {
        self.with_deadline(self.deadline)
            .spawn_unlogged(command, as_root)
            .await
    }

    /// Runs `command` to its end and returns its output. For commands whose output is small;
    /// stream large output with [`Session::spawn`]. Fails with [`SshError::CommandTimeout`]
    /// when it takes longer than the session's deadline.
    pub async fn exec(&self, command: &str, as_root: bool) -> Result<Output, SshError> {
        self.with_deadline(self.deadline)
            .exec(command, as_root)
            .await
    }

    /// Like [`Session::exec_ok`], but the host log gets only the byte count of its stdout (see
    /// [`Session::spawn_unlogged`]).
    pub async fn exec_ok_unlogged(&self, command: &str, as_root: bool) -> Result<String, SshError> {
        self.with_deadline(self.deadline)
            .exec_ok_unlogged(command, as_root)
            .await
    }

    /// Runs `command`; fails unless it exits 0. Returns its stdout.
    pub async fn exec_ok(&self, command: &str, as_root: bool) -> Result<String, SshError> {
        self.with_deadline(self.deadline)
            .exec_ok(command, as_root)
            .await
    }

    fn ok(&self, command: &str, out: Output) -> Result<String, SshError> {
        if out.exit.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(SshError::CommandFailed {
                host: self.name.clone(),
                command: command.to_string(),
                status: out.exit.describe(),
                stderr: out.exit.stderr_tail.trim().to_string(),
            })
        }
    }

    /// Closes the connection.
    pub async fn close(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }

    fn timed_out(&self, command: &str, limit: Duration, silent: bool) -> SshError {
        SshError::CommandTimeout {
            host: self.name.clone(),
            command: command.to_string(),
            secs: limit.as_secs(),
            silent,
            log: self.log.as_ref().map(|l| l.path().to_path_buf()),
        }
    }

    async fn spawn_with(
        &self,
        command: &str,
        as_root: bool,
        log_stdout: bool,
        limits: Limits,
    ) -> Result<RemoteChild, SshError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (wire, password) = self.wrap(command, as_root)?;
        if let Some(log) = &self.log {
            let shown = if as_root {
                format!("(as root) {command}")
            } else {
                command.to_string()
            };
            log.command(id, &shown);
        }
        // Opening the channel and getting past sudo are bounded like the rest: a host whose
        // sudo hangs (an LDAP lookup, a PAM module waiting) must not hang ferry.
        let start_by = limits.hard.unwrap_or_else(|| Instant::now() + limits.idle);
        let timed_out = |log: &Option<Arc<HostLog>>| {
            if let Some(log) = log {
                log.exit(
                    id,
                    &format!("did not start within {}s", limits.idle.as_secs()),
                );
            }
            self.timed_out(command, limits.idle, false)
        };
        let chan_err = |cause| SshError::Channel {
            host: self.name.clone(),
            command: command.to_string(),
            cause: Box::new(cause),
        };
        let opened = timeout_at(start_by, async {
            let channel = self.handle.channel_open_session().await.map_err(chan_err)?;
            channel
                .exec(true, wire.as_bytes())
                .await
                .map_err(chan_err)?;
            Ok::<_, SshError>(channel)
        })
        .await;
        let channel = match opened {
            Ok(c) => c?,
            Err(_) => return Err(timed_out(&self.log)),
        };
        let (mut read, write) = channel.split();
        let write = Arc::new(write);
        let mut early = Vec::new();
        if as_root && !matches!(self.sudo, Sudo::None) {
            let handshake =
                self.sudo_handshake(&mut read, &write, password, &mut early, id, command);
            match timeout_at(start_by, handshake).await {
                Ok(r) => r?,
                Err(_) => {
                    let _ = write.signal(Sig::TERM).await;
                    let _ = write.close().await;
                    return Err(timed_out(&self.log));
                }
            }
        }
        let (out_w, out_r) = tokio::io::duplex(256 * 1024);
        let (tx, rx) = oneshot::channel();
        let (ended_tx, ended) = watch::channel(false);
        let activity = Arc::new(Activity::new());
        tokio::spawn(pump(
            read,
            out_w,
            early,
            Pump {
                log: self.log.clone(),
                log_stdout,
                id,
                write: write.clone(),
                activity: activity.clone(),
                limits,
            },
            tx,
            ended_tx,
        ));
        Ok(RemoteChild {
            ended,
            host: self.name.clone(),
            command: command.to_string(),
            stdin: Some(Box::pin(ActiveWriter {
                inner: write.make_writer(),
                activity,
            })),
            _write: write,
            stdout: out_r,
            exit: rx,
            limits,
            log: self.log.as_ref().map(|l| l.path().to_path_buf()),
        })
    }

    async fn exec_with(
        &self,
        command: &str,
        as_root: bool,
        log_stdout: bool,
        limit: Duration,
    ) -> Result<Output, SshError> {
        let limits = Limits {
            idle: limit,
            hard: Some(Instant::now() + limit),
        };
        let mut child = self
            .spawn_with(command, as_root, log_stdout, limits)
            .await?;
        child.close_stdin().await;
        let mut stdout = Vec::new();
        // One byte past the limit tells "exactly at the limit" from "more".
        let most = EXEC_OUTPUT_LIMIT as u64 + 1;
        let _ = (&mut child.stdout)
            .take(most)
            .read_to_end(&mut stdout)
            .await;
        if stdout.len() > EXEC_OUTPUT_LIMIT {
            child.abort().await;
            return Err(SshError::OutputTooLarge {
                host: self.name.clone(),
                command: command.to_string(),
                limit: EXEC_OUTPUT_LIMIT,
            });
        }
        let exit = child.wait().await?;
        Ok(Output { stdout, exit })
    }

    /// The command line sent to the host, and the sudo password to feed if any. The login
    /// shell (bash, zsh, whatever the admin chose) only ever parses `sh -c 'QUOTED'` or
    /// `sudo ... -- sh -c 'QUOTED'`: the command itself is read by a POSIX shell. Every command
    /// passes here, so this is where a NUL byte in one is refused (`shell_quote` lets it through
    /// for that reason).
    fn wrap(&self, command: &str, as_root: bool) -> Result<(String, Option<Secret>), SshError> {
        let quote = |s: &str| {
            shlex::try_quote(s)
                .map(|q| q.into_owned())
                .map_err(|_| SshError::NulInCommand {
                    host: self.name.clone(),
                    command: command.to_string(),
                })
        };
        if !as_root || matches!(self.sudo, Sudo::None) {
            return Ok((format!("sh -c {}", quote(command)?), None));
        }
        // The ready marker tells us sudo has finished with stdin: everything after it is the
        // command's. -k: ignore cached credentials, so sudo always asks when a password is set
        // and the password can never land in the command's stdin. The prompt is quoted: left
        // bare, `[ferry-sudo-prompt]` is a glob that a file named `p` in the login's home
        // replaces (and zsh refuses when nothing matches).
        let inner = format!("printf '%s\\n' {READY} >&2; {command}");
        Ok(match &self.sudo {
            Sudo::None | Sudo::Passwordless => {
                (format!("sudo -n -- sh -c {}", quote(&inner)?), None)
            }
            Sudo::Password(pw) => (
                format!(
                    "sudo -k -S -p {} -- sh -c {}",
                    shell_quote(PROMPT),
                    quote(&inner)?
                ),
                Some(pw.clone()),
            ),
        })
    }

    /// Waits until sudo has started the command, answering its password prompt once.
    async fn sudo_handshake(
        &self,
        read: &mut ChannelReadHalf,
        write: &ChannelWriteHalf<client::Msg>,
        password: Option<Secret>,
        early_stdout: &mut Vec<u8>,
        id: u64,
        command: &str,
    ) -> Result<(), SshError> {
        let mut err = Vec::new();
        let mut prompts = 0;
        loop {
            let Some(msg) = read.wait().await else {
                return Err(self.sudo_failed(&err, command));
            };
            match msg {
                ChannelMsg::Data { data } => {
                    if early_stdout.len() + data.len() > HANDSHAKE_LIMIT {
                        let _ = write.close().await;
                        return Err(self.sudo_flood(command, "stdout"));
                    }
                    early_stdout.extend_from_slice(&data);
                }
                ChannelMsg::ExtendedData { data, .. } => {
                    if err.len() + data.len() > HANDSHAKE_LIMIT {
                        let _ = write.close().await;
                        return Err(self.sudo_flood(command, "stderr"));
                    }
                    err.extend_from_slice(&data);
                    let text = String::from_utf8_lossy(&err).into_owned();
                    let seen = text.matches(PROMPT).count();
                    if seen > prompts {
                        prompts = seen;
                        if prompts > 1 {
                            let _ = write.close().await;
                            if let Some(log) = &self.log {
                                log.exit(id, "sudo password rejected");
                            }
                            return Err(SshError::SudoPasswordWrong {
                                host: self.name.clone(),
                                user: self.user.clone(),
                            });
                        }
                        let Some(pw) = &password else {
                            return Err(self.sudo_failed(&err, command));
                        };
                        let mut line = Vec::with_capacity(pw.expose().len() + 1);
                        line.extend_from_slice(pw.expose().as_bytes());
                        line.push(b'\n');
                        write
                            .data_bytes(line)
                            .await
                            .map_err(|cause| SshError::Channel {
                                host: self.name.clone(),
                                command: command.to_string(),
                                cause: Box::new(cause),
                            })?;
                    }
                    if let Some(pos) = text.find(READY) {
                        // What came before the marker is sudo's (and the login shell's) chatter.
                        let rest = text[pos + READY.len()..].trim_start_matches('\n');
                        if let Some(log) = &self.log {
                            let before = text[..pos].replace(PROMPT, "");
                            if !before.trim().is_empty() {
                                log.output(id, "err", before.as_bytes());
                            }
                            if !rest.is_empty() {
                                log.output(id, "err", rest.as_bytes());
                            }
                        }
                        return Ok(());
                    }
                }
                ChannelMsg::ExitStatus { .. } | ChannelMsg::Eof | ChannelMsg::Close => {
                    return Err(self.sudo_failed(&err, command));
                }
                _ => {}
            }
        }
    }

    /// sudo (or the login shell) printed more than [`HANDSHAKE_LIMIT`] before the command
    /// started.
    fn sudo_flood(&self, command: &str, stream: &str) -> SshError {
        SshError::SudoRefused {
            host: self.name.clone(),
            user: self.user.clone(),
            message: format!(
                "more than {HANDSHAKE_LIMIT} bytes on {stream} before `{command}` started \
                 (a login script printing endlessly?)"
            ),
        }
    }

    fn sudo_failed(&self, stderr: &[u8], command: &str) -> SshError {
        let text = String::from_utf8_lossy(stderr).replace(PROMPT, "");
        let message = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .filter(|l| l.starts_with("sudo") || l.contains("sudoers") || l.contains("password"))
            .collect::<Vec<_>>()
            .join("; ");
        if let Some(log) = &self.log {
            log.output(0, "err", text.as_bytes());
        }
        SshError::SudoRefused {
            host: self.name.clone(),
            user: self.user.clone(),
            message: if message.is_empty() {
                format!("sudo ended before running `{command}`: {}", text.trim())
            } else {
                message
            },
        }
    }
}

/// A session seen with its own deadline for the commands run through it (see
/// [`Session::with_deadline`]). Same methods as the session's.
#[derive(Debug, Clone, Copy)]
pub struct Deadline<'a> {
    session: &'a Session,
    limit: Duration,
}

impl Deadline<'_> {
    /// The deadline.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// [`Session::spawn`]: stopped when nothing moves for the deadline.
    pub async fn spawn(&self, command: &str, as_root: bool) -> Result<RemoteChild, SshError> {
        let limits = Limits {
            idle: self.limit,
            hard: None,
        };
        self.session
            .spawn_with(command, as_root, true, limits)
            .await
    }

    /// [`Session::spawn_unlogged`]: stopped when nothing moves for the deadline.
    pub async fn spawn_unlogged(
        &self,
        command: &str,
        as_root: bool,
    ) -> Result<RemoteChild, SshError> {
        let limits = Limits {
            idle: self.limit,
            hard: None,
        };
        self.session
            .spawn_with(command, as_root, false, limits)
            .await
    }

    /// [`Session::exec`] within the deadline.
    pub async fn exec(&self, command: &str, as_root: bool) -> Result<Output, SshError> {
        self.session
            .exec_with(command, as_root, true, self.limit)
            .await
    }

    /// [`Session::exec_ok`] within the deadline.
    pub async fn exec_ok(&self, command: &str, as_root: bool) -> Result<String, SshError> {
        let out = self.exec(command, as_root).await?;
        self.session.ok(command, out)
    }

    /// [`Session::exec_ok_unlogged`] within the deadline.
    pub async fn exec_ok_unlogged(&self, command: &str, as_root: bool) -> Result<String, SshError> {
        let out = self
            .session
            .exec_with(command, as_root, false, self.limit)
            .await?;
        self.session.ok(command, out)
    }
}

/// Makes the SSH handshake with `target` (directly or through `via`) within the connect
/// timeout; the host key is judged by `handler`.
async fn handshake(
    target: &Target,
    via: Option<&Session>,
    opts: &SessionOptions,
    handler: Client,
    refusal: &Mutex<Option<SshError>>,
) -> Result<Handle<Client>, SshError> {
    let host = target.name.clone();
    let addr = format!("{}:{}", target.address, target.port);
    let config = Arc::new(opts.client_config());
    let protocol = |source: russh::Error| -> SshError {
        if let Some(e) = refusal.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return e;
        }
        match source {
            russh::Error::IO(cause) => SshError::Connect {
                host: host.clone(),
                addr: addr.clone(),
                cause,
            },
            cause => SshError::Protocol {
                host: host.clone(),
                addr: addr.clone(),
                cause: Box::new(cause),
            },
        }
    };
    let handshake = async {
        match via {
            None => {
                let tcp = tokio::net::TcpStream::connect((target.address.as_str(), target.port))
                    .await
                    .map_err(|cause| SshError::Connect {
                        host: host.clone(),
                        addr: addr.clone(),
                        cause,
                    })?;
                let _ = tcp.set_nodelay(true);
                client::connect_stream(config, tcp, handler)
                    .await
                    .map_err(protocol)
            }
            Some(jump) => {
                let channel = jump
                    .handle
                    .channel_open_direct_tcpip(
                        target.address.clone(),
                        u32::from(target.port),
                        "127.0.0.1",
                        0,
                    )
                    .await
                    .map_err(|e| SshError::Bastion {
                        host: host.clone(),
                        bastion: jump.name.clone(),
                        reason: format!("cannot open a tunnel to {addr}: {e}"),
                    })?;
                client::connect_stream(config, channel.into_stream(), handler)
                    .await
                    .map_err(protocol)
            }
        }
    };
    timeout(opts.connect_timeout, handshake)
        .await
        .map_err(|_| SshError::Timeout {
            host: host.clone(),
            addr: addr.clone(),
            secs: opts.connect_timeout.as_secs(),
        })?
}

/// When a command is stopped: after `idle` with no byte moving either way, and in any case at
/// `hard` when set.
#[derive(Debug, Clone, Copy)]
struct Limits {
    idle: Duration,
    hard: Option<Instant>,
}

/// When bytes last moved on a channel, either way.
#[derive(Debug)]
struct Activity {
    base: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// The command's stdin, noting each write as activity.
struct ActiveWriter<W> {
    inner: W,
    activity: Arc<Activity>,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for ActiveWriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            if *n > 0 {
                self.activity.touch();
            }
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The most stdout [`Session::exec`] keeps (4 MiB); more is an error.
pub const EXEC_OUTPUT_LIMIT: usize = 4 * 1024 * 1024;

/// The most stderr (and early stdout) kept while waiting for sudo to start the command.
const HANDSHAKE_LIMIT: usize = 64 * 1024;

const PROMPT: &str = "[ferry-sudo-prompt]";
const READY: &str = "FERRY-SUDO-READY";

fn bastion_error(target: &Target, e: SshError) -> SshError {
    let bastion = target
        .bastion
        .as_ref()
        .map(|b| b.name.clone())
        .unwrap_or_default();
    SshError::Bastion {
        host: target.name.clone(),
        bastion,
        reason: e.to_string(),
    }
}

async fn authenticate(handle: &mut Handle<Client>, target: &Target) -> Result<(), SshError> {
    let host = &target.name;
    let user = target.user.as_str();
    let protocol = |cause| SshError::Protocol {
        host: host.clone(),
        addr: format!("{}:{}", target.address, target.port),
        cause: Box::new(cause),
    };
    match &target.auth {
        Auth::Key { path, passphrase } => {
            let key = russh::keys::load_secret_key(path, passphrase.as_ref().map(Secret::expose))
                .map_err(|e| SshError::Key {
                host: host.clone(),
                path: path.clone(),
                reason: match (&e, passphrase) {
                    (russh::keys::Error::KeyIsEncrypted, None) => {
                        "it is encrypted and no passphrase is given".into()
                    }
                    (_, Some(_)) => format!("{e} (is the passphrase right?)"),
                    _ => e.to_string(),
                },
            })?;
            let hash = handle
                .best_supported_rsa_hash()
                .await
                .map_err(protocol)?
                .flatten();
            let res = handle
                .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
                .await
                .map_err(protocol)?;
            if res.success() {
                return Ok(());
            }
            Err(SshError::AuthRejected {
                host: host.clone(),
                user: user.to_string(),
                method: format!("public key {}", path.display()),
                hint: "that the key's .pub is in the user's authorized_keys".into(),
            })
        }
        Auth::Password(pw) => {
            let res = handle
                .authenticate_password(user, pw.expose())
                .await
                .map_err(protocol)?;
            if res.success() {
                return Ok(());
            }
            // Servers that take passwords through PAM only offer keyboard-interactive: answer
            // its password prompts with the same password.
            let mut reply = handle
                .authenticate_keyboard_interactive_start(user, None)
                .await
                .map_err(protocol)?;
            for _ in 0..4 {
                match reply {
                    KeyboardInteractiveAuthResponse::Success => return Ok(()),
                    KeyboardInteractiveAuthResponse::Failure { .. } => break,
                    KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => {
                        let answers = prompts
                            .iter()
                            .map(|p| {
                                if p.echo {
                                    String::new()
                                } else {
                                    pw.expose().to_string()
                                }
                            })
                            .collect();
                        reply = handle
                            .authenticate_keyboard_interactive_respond(answers)
                            .await
                            .map_err(protocol)?;
                    }
                }
            }
            Err(SshError::AuthRejected {
                host: host.clone(),
                user: user.to_string(),
                method: "password, keyboard-interactive".into(),
                hint: "the password".into(),
            })
        }
    }
}

/// Where [`pump`] logs, and when it stops the command.
struct Pump {
    log: Option<Arc<HostLog>>,
    /// False: stdout is counted, not logged.
    log_stdout: bool,
    id: u64,
    write: Arc<ChannelWriteHalf<client::Msg>>,
    activity: Arc<Activity>,
    limits: Limits,
}

/// How the channel ended, as [`pump`] saw it.
struct Ended {
    exit: Exit,
    /// The deadline passed: `Some(true)` when it was the silence bound.
    timed_out: Option<bool>,
}

/// After stopping a command, how long to wait for the host's last messages.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Moves the channel's output to the stdout pipe and the log, stops the command when its
/// deadline passes, and reports how it ended.
async fn pump(
    mut read: ChannelReadHalf,
    mut out: DuplexStream,
    early: Vec<u8>,
    how: Pump,
    done: oneshot::Sender<Ended>,
    ended: watch::Sender<bool>,
) {
    let Pump {
        log,
        log_stdout,
        id,
        write,
        activity,
        limits,
    } = how;
    let mut exit = Exit::default();
    let mut out_open = true;
    let mut out_bytes: u64 = 0;
    let mut timed_out = None;
    let mut stop_by: Option<Instant> = None;
    activity.touch();
    if !early.is_empty() {
        out_bytes += early.len() as u64;
        if let (Some(log), true) = (&log, log_stdout) {
            log.output(id, "out", &early);
        }
        out_open = out.write_all(&early).await.is_ok();
    }
    loop {
        let due = stop_by.unwrap_or_else(|| {
            let idle = activity.last() + limits.idle;
            limits.hard.map_or(idle, |h| h.min(idle))
        });
        let msg = match timeout_at(due, read.wait()).await {
            Ok(Some(msg)) => msg,
            Ok(None) => break,
            Err(_) if stop_by.is_some() => break,
            Err(_) => {
                let now = Instant::now();
                let hard = limits.hard.is_some_and(|h| h <= now);
                if !hard && activity.last() + limits.idle > now {
                    // Bytes moved (our stdin) while we waited: not silent after all.
                    continue;
                }
                // The host may still run it: ask sshd to stop it, then close the channel so
                // nothing waits on it any more.
                timed_out = Some(!hard);
                let _ = ended.send(true);
                let _ = write.signal(Sig::TERM).await;
                let _ = write.close().await;
                stop_by = Some(now + STOP_GRACE);
                continue;
            }
        };
        match msg {
            ChannelMsg::Data { data } => {
                activity.touch();
                out_bytes += data.len() as u64;
                if let (Some(log), true) = (&log, log_stdout) {
                    log.output(id, "out", &data);
                }
                // A reader that went away does not stop the command; keep draining.
                if out_open && out.write_all(&data).await.is_err() {
                    out_open = false;
                }
            }
            ChannelMsg::ExtendedData { data, .. } => {
                activity.touch();
                if let Some(log) = &log {
                    log.output(id, "err", &data);
                }
                exit.stderr_tail.push_str(&String::from_utf8_lossy(&data));
                if exit.stderr_tail.len() > STDERR_TAIL {
                    let mut cut = exit.stderr_tail.len() - STDERR_TAIL;
                    while !exit.stderr_tail.is_char_boundary(cut) {
                        cut += 1;
                    }
                    exit.stderr_tail.drain(..cut);
                }
            }
            ChannelMsg::ExitStatus { exit_status } => {
                exit.status = Some(exit_status);
                let _ = ended.send(true);
            }
            ChannelMsg::ExitSignal { signal_name, .. } => {
                exit.signal = Some(format!("{signal_name:?}"));
                let _ = ended.send(true);
            }
            ChannelMsg::Eof => {
                let _ = out.shutdown().await;
                out_open = false;
            }
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    drop(out);
    let _ = ended.send(true);
    if let Some(log) = &log {
        if !log_stdout {
            log.output(
                id,
                "out",
                format!("({out_bytes} bytes, not logged)").as_bytes(),
            );
        }
        let how = match timed_out {
            Some(true) => format!(
                "stopped: nothing moved for {}s (ferry's deadline)",
                limits.idle.as_secs()
            ),
            Some(false) => format!(
                "stopped: not finished within {}s (ferry's deadline)",
                limits.idle.as_secs()
            ),
            None => exit.describe(),
        };
        log.exit(id, &how);
    }
    let _ = done.send(Ended { exit, timed_out });
}

const STDERR_TAIL: usize = 4096;

/// How a remote command ended.
#[derive(Debug, Default, Clone)]
pub struct Exit {
    /// Exit status, if the command exited.
    pub status: Option<u32>,
    /// The signal that killed it, if any.
    pub signal: Option<String>,
    /// The last 4 KiB of its stderr.
    pub stderr_tail: String,
}

impl Exit {
    /// Exited with status 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// `exit 3`, `signal KILL` or `no exit status (connection lost?)`.
    pub fn describe(&self) -> String {
        match (&self.status, &self.signal) {
            (Some(s), _) => format!("exit {s}"),
            (None, Some(sig)) => format!("signal {sig}"),
            (None, None) => "no exit status (connection lost?)".into(),
        }
    }
}

/// A finished command's output.
#[derive(Debug)]
pub struct Output {
    /// Everything it printed on stdout.
    pub stdout: Vec<u8>,
    /// How it ended, with the end of its stderr.
    pub exit: Exit,
}

/// A command running on a host: write its stdin, read its stdout, then wait for its end.
pub struct RemoteChild {
    host: String,
    command: String,
    stdin: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    _write: Arc<ChannelWriteHalf<client::Msg>>,
    stdout: DuplexStream,
    exit: oneshot::Receiver<Ended>,
    ended: watch::Receiver<bool>,
    limits: Limits,
    log: Option<PathBuf>,
}

impl std::fmt::Debug for RemoteChild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteChild")
            .field("host", &self.host)
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}

impl RemoteChild {
    /// The command's stdin. `None` once closed.
    pub fn stdin(&mut self) -> Option<&mut (dyn AsyncWrite + Send + Unpin)> {
        self.stdin
            .as_mut()
            .map(|s| s as &mut (dyn AsyncWrite + Send + Unpin))
    }

    /// The command's stdout.
    pub fn stdout(&mut self) -> &mut (dyn AsyncRead + Send + Unpin) {
        &mut self.stdout
    }

    /// Both streams at once (for protocol clients that hold a reader and a writer).
    pub fn streams(
        &mut self,
    ) -> (
        Option<&mut (dyn AsyncWrite + Send + Unpin)>,
        &mut (dyn AsyncRead + Send + Unpin),
    ) {
        (
            self.stdin
                .as_mut()
                .map(|s| s as &mut (dyn AsyncWrite + Send + Unpin)),
            &mut self.stdout,
        )
    }

    /// Takes the streams out, for clients that need to own them; [`RemoteChild::wait`] still
    /// reports the end.
    pub fn take_streams(&mut self) -> Option<(Pin<Box<dyn AsyncWrite + Send>>, DuplexStream)> {
        let stdin = self.stdin.take()?;
        let (_, dummy) = tokio::io::duplex(1);
        Some((stdin, std::mem::replace(&mut self.stdout, dummy)))
    }

    /// Writes all of `data` to stdin; fails (instead of waiting forever for window space) as
    /// soon as the command has ended, the connection is gone or the deadline stopped it.
    pub async fn write_stdin(&mut self, data: &[u8]) -> std::io::Result<()> {
        let gone =
            || std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the remote command ended");
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(gone());
        };
        let mut ended = self.ended.clone();
        tokio::select! {
            r = stdin.write_all(data) => r,
            _ = ended.wait_for(|e| *e) => Err(gone()),
        }
    }

    /// Sends end-of-file on stdin.
    pub async fn close_stdin(&mut self) {
        if let Some(mut s) = self.stdin.take() {
            let mut ended = self.ended.clone();
            tokio::select! {
                _ = s.shutdown() => {}
                _ = ended.wait_for(|e| *e) => {}
            }
        }
    }

    /// Like [`RemoteChild::wait`], but closes the channel (the command gets a hangup) when it
    /// has not ended after `limit`.
    pub async fn wait_or_close(mut self, limit: Duration) -> Result<Exit, SshError> {
        match timeout(limit, self.end()).await {
            Ok(r) => r,
            Err(_) => {
                let _ = self._write.close().await;
                Err(SshError::CommandFailed {
                    host: self.host,
                    command: self.command,
                    status: format!("still running after {}s, channel closed", limit.as_secs()),
                    stderr: String::new(),
                })
            }
        }
    }

    /// Closes the channel without waiting (the command gets a hangup).
    pub async fn abort(self) {
        let _ = self._write.close().await;
    }

    /// Closes stdin, drains stdout, and waits for the command's end. Fails with
    /// [`SshError::CommandTimeout`] when its deadline stopped it.
    pub async fn wait(mut self) -> Result<Exit, SshError> {
        self.end().await
    }

    async fn end(&mut self) -> Result<Exit, SshError> {
        self.close_stdin().await;
        let mut sink = tokio::io::sink();
        let _ = tokio::io::copy(&mut self.stdout, &mut sink).await;
        match (&mut self.exit).await {
            Ok(Ended {
                timed_out: Some(silent),
                ..
            }) => Err(SshError::CommandTimeout {
                host: self.host.clone(),
                command: self.command.clone(),
                secs: self.limits.idle.as_secs(),
                silent,
                log: self.log.clone(),
            }),
            Ok(Ended { exit, .. }) if exit.status.is_some() || exit.signal.is_some() => Ok(exit),
            _ => Err(SshError::ConnectionLost {
                host: self.host.clone(),
                command: self.command.clone(),
            }),
        }
    }
}
