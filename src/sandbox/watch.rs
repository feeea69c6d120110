//! The supervisor's side of a sandboxed start: the stage's report, and the resource use of a
//! host's process tree for limits no cgroup enforces.

use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::stage::StageReport;

/// Reads the stage's report: everything it writes before its channel closes at `exec`.
///
/// # Errors
/// A message for the user when the stage said nothing (it is not a stage, or it died first),
/// sent garbage, or took longer than `timeout`.
pub async fn read_stage_report(
    mut stage: tokio::net::UnixStream,
    child: &mut tokio::process::Child,
    timeout: Duration,
) -> Result<StageReport, String> {
    let mut text = Vec::new();
    let read = tokio::time::timeout(timeout, stage.read_to_end(&mut text)).await;
    match read {
        Err(_) => {
            return Err(format!(
                "the sandbox stage did not finish within {} ms",
                timeout.as_millis()
            ));
        }
        // A stage that dies with its channel unread resets it: the same as saying nothing.
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionReset => text.clear(),
        Ok(Err(err)) => return Err(format!("reading the sandbox stage's report: {err}")),
        Ok(Ok(_)) => {}
    }
    if text.is_empty() {
        let status = tokio::time::timeout(Duration::from_millis(500), child.wait())
            .await
            .ok()
            .and_then(Result::ok);
        let how = status.map_or_else(String::new, |s| format!(" ({s})"));
        return Err(format!(
            "the sandbox stage exited without a report{how}: the stage executable must call \
             `dscode_extension_host::sandbox::stage::run_if_requested()` first thing in main \
             (set `SandboxSettings::stage` to a program that does, such as `dscode-exthost`), \
             and bubblewrap must be able to create its namespaces"
        ));
    }
    serde_json::from_slice(&text)
        .map_err(|err| format!("the sandbox stage's report is malformed: {err}"))
}

/// What a process tree uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Resident memory, summed over processes.
    pub rss_bytes: u64,
    /// Processes plus their threads.
    pub tasks: u64,
}

/// Watches a host's process tree through `/proc`, cheaply enough to check a hundred hosts ten
/// times a second: the tree is walked again only every [`TreeWatch::REWALK`] checks, and in
/// between each known process is read with one `pread` on files kept open. A process that
/// appears between two walks is counted from the next walk on; one that exits reads as gone
/// (its open files never point at a reused pid).
#[derive(Debug)]
pub struct TreeWatch {
    root: u32,
    procs: Vec<std::fs::File>,
    checks: u32,
}

impl TreeWatch {
    /// Checks between two walks of the tree.
    pub const REWALK: u32 = 10;

    /// Watches `root` and everything below it.
    #[must_use]
    pub fn new(root: u32) -> Self {
        Self {
            root,
            procs: Vec::new(),
            checks: 0,
        }
    }

    /// What the tree uses now.
    pub fn usage(&mut self) -> Usage {
        if self.checks % Self::REWALK == 0 {
            self.procs = tree_pids(self.root, 65_536)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|pid| std::fs::File::open(format!("/proc/{pid}/stat")).ok())
                .collect();
        }
        self.checks = self.checks.wrapping_add(1);
        let page = page_size();
        let mut usage = Usage::default();
        let mut buf = [0u8; 1024];
        for stat in &self.procs {
            use std::os::unix::fs::FileExt;
            let Ok(n) = stat.read_at(&mut buf, 0) else {
                continue;
            };
            if let Some((threads, resident)) = parse_stat(&buf[..n]) {
                usage.tasks += threads;
                usage.rss_bytes += resident * page;
            }
        }
        usage
    }
}

/// `num_threads` and `rss` (pages) from a `/proc/<pid>/stat` line. The command name may hold
/// spaces and parentheses, so fields are counted from its closing parenthesis.
fn parse_stat(line: &[u8]) -> Option<(u64, u64)> {
    let line = std::str::from_utf8(line).ok()?;
    let rest = &line[line.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3; num_threads field 20; rss field 24.
    let threads = fields.nth(17)?.parse().ok()?;
    let resident = fields.nth(3)?.parse().ok()?;
    Some((threads, resident))
}

/// Resident memory and task count of `root` and all its descendants, from `/proc`.
#[must_use]
pub fn tree_usage(root: u32) -> Usage {
    let page = page_size();
    let mut usage = Usage::default();
    let mut stack = vec![root];
    let mut seen = 0usize;
    while let Some(pid) = stack.pop() {
        seen += 1;
        if seen > 65_536 {
            break;
        }
        if let Ok(statm) = std::fs::read_to_string(format!("/proc/{pid}/statm"))
            && let Some(resident) = statm
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        {
            usage.rss_bytes += resident * page;
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            usage.tasks += 1;
            if let Ok(children) = std::fs::read_to_string(task.path().join("children")) {
                stack.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
    }
    usage
}

/// `root` and every process below it (threads not listed separately), or `None` when there
/// are more than `max`.
#[must_use]
pub fn tree_pids(root: u32, max: usize) -> Option<Vec<u32>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        if !seen.insert(pid) {
            continue;
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        if out.len() == max {
            return None;
        }
        out.push(pid);
        for task in tasks.flatten() {
            if let Ok(children) = std::fs::read_to_string(task.path().join("children")) {
                stack.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
    }
    Some(out)
}

fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_past_odd_command_names() {
        let line = b"42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 7 0 123 456789 2048 18446744073709551615";
        assert_eq!(parse_stat(line), Some((7, 2048)));
        assert_eq!(parse_stat(b"42 (x) S 1"), None);
    }

    #[test]
    fn a_tree_watch_agrees_with_a_full_walk() {
        let mut tree = std::process::Command::new("sh")
            .args(["-c", "sleep 3 & sleep 3 & wait"])
            .spawn()
            .unwrap();
        let root = tree.id();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while tree_usage(root).tasks < 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut watch = TreeWatch::new(root);
        let walked = tree_usage(root);
        let watched = watch.usage();
        assert_eq!(watched.tasks, walked.tasks, "{watched:?} vs {walked:?}");
        assert!(watched.rss_bytes > 0, "{watched:?}");
        // Between walks the known processes are still read: killing the tree shows at once.
        let _ = tree.kill();
        let _ = tree.wait();
        let after = watch.usage();
        assert!(after.tasks < watched.tasks, "{after:?} vs {watched:?}");
    }

    #[test]
    fn usage_counts_every_process_of_a_tree() {
        // A shell with two children: three processes, one thread each.
        let mut tree = std::process::Command::new("sh")
            .args(["-c", "sleep 3 & sleep 3 & wait"])
            .spawn()
            .unwrap();
        let root = tree.id();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut usage = tree_usage(root);
        while usage.tasks < 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            usage = tree_usage(root);
        }
        let _ = tree.kill();
        let _ = tree.wait();
        assert_eq!(usage.tasks, 3, "{usage:?}");
        assert!(usage.rss_bytes > 0, "{usage:?}");
        // A pid that does not exist uses nothing.
        assert_eq!(tree_usage(u32::MAX - 1), Usage::default());
    }
}
