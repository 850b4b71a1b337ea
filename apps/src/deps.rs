//! The order in which a set of packages deploys: each after the packages it depends on. A
//! dependency that is missing, of a version outside its range, or that leads back to the
//! package itself, is refused with one line naming the packages.

use std::collections::BTreeMap;

use crate::{AppError, AppSpec};

/// Indexes into `apps`, each package after its dependencies; among packages free to go, the
/// order given. Every dependency must be among `apps` at a version in its range.
pub fn order(apps: &[&AppSpec]) -> Result<Vec<usize>, AppError> {
    let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, a) in apps.iter().enumerate() {
        if let Some(j) = by_name.insert(a.name.as_str(), i) {
            return Err(AppError::Dependency(format!(
                "two packages are named {} ({} and {}): keep one",
                a.name, apps[j].version, a.version
            )));
        }
    }
    let mut needs: Vec<Vec<usize>> = vec![];
    for a in apps {
        let mut list = vec![];
        for d in &a.dependencies {
            let Some(&j) = by_name.get(d.name.as_str()) else {
                return Err(AppError::Dependency(format!(
                    "{} {} needs {} {}, which is not among the packages: add it (to \
                     [[app_packages]] in bundle.toml) or remove the dependency",
                    a.name, a.version, d.name, d.version
                )));
            };
            if !d.version.0.matches(&apps[j].version.0) {
                return Err(AppError::Dependency(format!(
                    "{} {} needs {} {}, and the package given is {} {}: give a version in range",
                    a.name, a.version, d.name, d.version, d.name, apps[j].version
                )));
            }
            list.push(j);
        }
        needs.push(list);
    }
    // Depth-first, in the order given; a package met again while its own dependencies are
    // being placed closes a cycle, which is named in full.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        i: usize,
        needs: &[Vec<usize>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        out: &mut Vec<usize>,
    ) -> Result<(), Vec<usize>> {
        match marks[i] {
            Mark::Done => return Ok(()),
            Mark::Open => {
                let from = path.iter().position(|&p| p == i).unwrap_or(0);
                let mut cycle = path[from..].to_vec();
                cycle.push(i);
                return Err(cycle);
            }
            Mark::New => {}
        }
        marks[i] = Mark::Open;
        path.push(i);
        for &j in &needs[i] {
            visit(j, needs, marks, path, out)?;
        }
        path.pop();
        marks[i] = Mark::Done;
        out.push(i);
        Ok(())
    }
    let mut marks = vec![Mark::New; apps.len()];
    let mut out = vec![];
    for i in 0..apps.len() {
        visit(i, &needs, &mut marks, &mut vec![], &mut out).map_err(|cycle| {
            let names: Vec<&str> = cycle.iter().map(|&c| apps[c].name.as_str()).collect();
            AppError::Dependency(format!(
                "packages depend on each other in a circle ({}): none can be deployed first; \
                 remove one of these dependencies",
                names.join(" -> ")
            ))
        })?;
    }
    Ok(out)
}
