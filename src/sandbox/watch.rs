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
/// times a second: a tree that stays the same is walked again only every [`TreeWatch::REWALK`]
/// checks, and in between each known process's memory is read with one `pread` on a file kept
/// open. A tree that changed at its last walk is walked at every check until it settles, so a
/// growing tree is counted within a tick. A process that appears between two walks is counted
/// from the next walk on; one that exits reads as gone (its open file never points at a reused
/// pid).
#[derive(Debug)]
pub struct TreeWatch {
    root: u32,
    /// The processes of the last walk, sorted.
    pids: Vec<u32>,
    /// Per known process, its `statm` (resident pages): cheap for the kernel to produce, unlike
    /// `stat` or `status`, which gather every field on each read.
    procs: Vec<std::fs::File>,
    /// Processes and threads at the last walk. The kernel enforces the process limit itself
    /// (`RLIMIT_NPROC` in the host's user namespace); this count is the watchdog's backstop.
    tasks: u64,
    /// Checks left before the next walk.
    until_walk: u32,
    /// The most processes a walk lists.
    cap: usize,
    /// The last result.
    last: Usage,
}

impl TreeWatch {
    /// Checks between two walks of a settled tree (two seconds at the supervisor's 100 ms
    /// ticks).
    pub const REWALK: u32 = 20;

    /// The default of [`TreeWatch::with_cap`].
    pub const DEFAULT_CAP: usize = 4096;

    /// Watches `root` and everything below it.
    #[must_use]
    pub fn new(root: u32) -> Self {
        Self {
            root,
            pids: Vec::new(),
            procs: Vec::new(),
            tasks: 0,
            until_walk: 0,
            cap: Self::DEFAULT_CAP,
            last: Usage::default(),
        }
    }

    /// Lists at most `processes` processes per walk (at least one): a bigger tree is cut
    /// there, and counts as at least that many tasks. One over a process limit is enough to
    /// tell that the limit is reached, and keeps a walk of a runaway tree cheap.
    #[must_use]
    pub fn with_cap(mut self, processes: usize) -> Self {
        self.cap = processes.max(1);
        self
    }

    /// What the tree uses now, walking it first if it is due.
    pub fn usage(&mut self) -> Usage {
        if self.until_walk == 0 {
            self.walk();
        }
        self.until_walk -= 1;
        self.read_memory()
    }

    /// What the tree uses now, from a fresh walk: for a decision that cannot wait for the next
    /// scheduled one.
    pub fn usage_now(&mut self) -> Usage {
        self.walk();
        self.until_walk -= 1;
        self.read_memory()
    }

    /// What the last check found, without looking again: for a tree whose root is gone.
    #[must_use]
    pub fn last(&self) -> Usage {
        self.last
    }

    fn walk(&mut self) {
        use std::os::unix::fs::MetadataExt;
        // A tree over the cap is cut there: its count is at least the cap, never zero.
        let (mut pids, _complete) = walk_tree(self.root, self.cap);
        pids.sort_unstable();
        // A task directory's link count is its thread count plus two.
        self.tasks = pids
            .iter()
            .map(|pid| {
                std::fs::metadata(format!("/proc/{pid}/task"))
                    .map_or(0, |m| m.nlink().saturating_sub(2))
            })
            .sum();
        self.procs = pids
            .iter()
            .filter_map(|pid| std::fs::File::open(format!("/proc/{pid}/statm")).ok())
            .collect();
        self.until_walk = if pids == self.pids { Self::REWALK } else { 1 };
        self.pids = pids;
    }

    fn read_memory(&mut self) -> Usage {
        use std::os::unix::fs::FileExt;
        let page = page_size();
        let mut usage = Usage {
            rss_bytes: 0,
            tasks: self.tasks,
        };
        let mut buf = [0u8; 128];
        for statm in &self.procs {
            // A process that exited reads as an error: it uses nothing any more.
            if let Ok(n) = statm.read_at(&mut buf, 0)
                && let Some(resident) = parse_statm(&buf[..n])
            {
                usage.rss_bytes += resident * page;
            }
        }
        self.last = usage;
        usage
    }
}

/// Resident pages, the second field of `/proc/<pid>/statm`.
fn parse_statm(line: &[u8]) -> Option<u64> {
    std::str::from_utf8(line)
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `root` and every process below it (threads not listed separately), or `None` when there
/// are more than `max`.
#[must_use]
pub fn tree_pids(root: u32, max: usize) -> Option<Vec<u32>> {
    let (pids, complete) = walk_tree(root, max);
    complete.then_some(pids)
}

/// `root` and the processes below it, at most `max` of them, and whether that was all.
fn walk_tree(root: u32, max: usize) -> (Vec<u32>, bool) {
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
            return (out, false);
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
    (out, true)
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
    fn statm_gives_resident_pages() {
        assert_eq!(parse_statm(b"117 2048 512 3 0 100 0\n"), Some(2048));
        assert_eq!(parse_statm(b"117"), None);
    }

    /// A shell with two children: three processes, one thread each.
    fn three_processes() -> std::process::Child {
        let tree = std::process::Command::new("sh")
            .args(["-c", "sleep 3 & sleep 3 & wait"])
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while tree_pids(tree.id(), 100).unwrap_or_default().len() < 3
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        tree
    }

    #[test]
    fn usage_counts_every_process_of_a_tree() {
        let mut tree = three_processes();
        let usage = TreeWatch::new(tree.id()).usage();
        let _ = tree.kill();
        let _ = tree.wait();
        assert_eq!(usage.tasks, 3, "{usage:?}");
        assert!(usage.rss_bytes > 0, "{usage:?}");
        // A pid that does not exist uses nothing.
        assert_eq!(TreeWatch::new(u32::MAX - 1).usage(), Usage::default());
    }

    /// Waits until `root` has `n` processes.
    fn until_processes(root: u32, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while tree_pids(root, 100).unwrap_or_default().len() < n
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_settled_tree_is_rewalked_on_demand_and_a_changed_one_at_the_next_check() {
        use std::io::Write;
        // One more child for each line it reads.
        let mut tree = std::process::Command::new("sh")
            .args(["-c", "while read more; do sleep 5 & done; wait"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let root = tree.id();
        let mut stdin = tree.stdin.take().unwrap();
        let mut more = |n: usize| {
            writeln!(stdin, "more").unwrap();
            until_processes(root, n);
        };
        let mut watch = TreeWatch::new(root);
        assert_eq!(watch.usage().tasks, 1);
        assert_eq!(watch.usage().tasks, 1); // the same tree twice: settled
        more(2);
        let stale = watch.usage();
        let fresh = watch.usage_now();
        // That walk saw a change, so the very next check walks again.
        more(3);
        let next = watch.usage();
        let last = watch.last();
        let _ = tree.kill();
        let _ = tree.wait();
        assert_eq!(stale.tasks, 1, "a settled tree waits for its walk");
        assert_eq!(fresh.tasks, 2, "{fresh:?}");
        assert_eq!(next.tasks, 3, "{next:?}");
        assert_eq!(last, next, "last() is the last check, without a walk");
    }

    #[test]
    fn a_tree_over_the_cap_counts_at_least_the_cap() {
        let mut tree = three_processes();
        let (pids, complete) = walk_tree(tree.id(), 2);
        let capped = TreeWatch::new(tree.id()).with_cap(2).usage();
        let _ = tree.kill();
        let _ = tree.wait();
        assert_eq!((pids.len(), complete), (2, false));
        assert_eq!(capped.tasks, 2, "{capped:?}");
    }

    #[test]
    fn a_process_that_exits_stops_counting_before_the_next_walk() {
        let mut tree = three_processes();
        let mut watch = TreeWatch::new(tree.id());
        let before = watch.usage();
        let _ = tree.kill();
        let _ = tree.wait();
        let after = watch.usage();
        assert!(
            after.rss_bytes < before.rss_bytes,
            "{after:?} vs {before:?}"
        );
    }
}
