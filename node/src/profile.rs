//! Hardware profiles: which cores each role of the node runs on, and how
//! each role spends its time.
//!
//! A profile (`hw-profiles/*.toml`) maps the roles of [`Role`] to core
//! sets. A role's thread calls [`Profile::pin`] when it starts; the kernel
//! affinity mask is set to the role's cores (`sched_setaffinity`), so
//! threads the role spawns (the parallel executor's workers: the helper
//! pool the role's thread builds on first use) inherit it.
//! A core that does not exist on the machine is a load error, not a silent
//! no-op.
//!
//! [`RoleClock`] splits a role's wall time into busy, idle (waiting for
//! input) and blocked (waiting on a full queue downstream: backpressure),
//! for the status line and the sizing of hardware.

use std::path::Path;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Deserialize;

use crate::config::ConfigError;
use crate::rpc::Metrics;

/// The node's pinned roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Consensus,
    Network,
    Rpc,
    Execution,
    /// The triedb commit of executed blocks (the `wake-commit` thread).
    Commit,
    Ingest,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Consensus => "consensus",
            Role::Network => "network",
            Role::Rpc => "rpc",
            Role::Execution => "execution",
            Role::Commit => "commit",
            Role::Ingest => "ingest",
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: String,
    cores: RawCores,
    #[serde(default)]
    execution: RawExecution,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCores {
    consensus: Vec<usize>,
    network: Vec<usize>,
    rpc: Vec<usize>,
    execution: Vec<usize>,
    /// Optional: the execution cores when left out.
    #[serde(default)]
    commit: Vec<usize>,
    ingest: Vec<usize>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExecution {
    threads: Option<usize>,
}

/// A checked profile.
#[derive(Clone, Debug)]
pub struct Profile {
    pub name: String,
    cores: RawCores,
    /// Parallel execution threads, when the profile sets them.
    pub execution_threads: Option<usize>,
}

/// Most cores a profile may name (the kernel's default `cpu_set_t`).
const CORES_MAX: usize = 1024;

impl Profile {
    /// Loads and checks a profile against the cores this machine has.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let invalid = |reason: String| ConfigError::Invalid { path: path.to_owned(), reason };
        let raw: RawProfile = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let available = std::thread::available_parallelism().map_or(1, usize::from);
        let profile =
            Profile { name: raw.name, cores: raw.cores, execution_threads: raw.execution.threads };
        for role in
            [Role::Consensus, Role::Network, Role::Rpc, Role::Execution, Role::Commit, Role::Ingest]
        {
            let cores = profile.cores(role);
            if cores.is_empty() {
                return Err(invalid(format!("cores.{} names no core", role.name())));
            }
            if let Some(core) = cores.iter().find(|c| **c >= available.min(CORES_MAX)) {
                return Err(invalid(format!(
                    "cores.{} names core {core}, but this machine has {available} \
                     (0..{available})",
                    role.name()
                )));
            }
        }
        if profile.execution_threads == Some(0) {
            return Err(invalid("execution.threads must be > 0".into()));
        }
        Ok(profile)
    }

    pub fn cores(&self, role: Role) -> &[usize] {
        match role {
            Role::Consensus => &self.cores.consensus,
            Role::Network => &self.cores.network,
            Role::Rpc => &self.cores.rpc,
            Role::Execution => &self.cores.execution,
            Role::Commit if self.cores.commit.is_empty() => &self.cores.execution,
            Role::Commit => &self.cores.commit,
            Role::Ingest => &self.cores.ingest,
        }
    }

    /// Pins the calling thread (and the threads it will spawn) to `role`'s cores.
    pub fn pin(&self, role: Role) -> std::io::Result<()> {
        pin_current_thread(self.cores(role))
    }
}

/// Pins the calling thread to `role`'s cores (a no-op without a profile).
pub fn pin(profile: Option<&Profile>, role: Role) {
    if let Some(profile) = profile {
        match profile.pin(role) {
            Ok(()) => tracing::debug!(role = role.name(), cores = ?profile.cores(role), "pinned"),
            Err(e) => tracing::warn!(role = role.name(), %e, "could not pin the thread"),
        }
    }
}

fn pin_current_thread(cores: &[usize]) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is a plain bit array; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &core in cores.iter().filter(|c| **c < CORES_MAX) {
        // SAFETY: `core` is below the set's capacity (CORES_MAX bits).
        unsafe { libc::CPU_SET(core, &mut set) };
    }
    // SAFETY: pid 0 is the calling thread; `set` is a valid, initialised
    // cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Busy / idle / blocked time of one role, in microseconds, shared with
/// the status line and exported on `/metrics` (see [`RoleClocks::register`]).
#[derive(Debug)]
pub struct RoleClock {
    busy_us: Counter,
    idle_us: Counter,
    blocked_us: Counter,
}

/// A snapshot of a [`RoleClock`] as fractions of the time between two
/// snapshots.
#[derive(Clone, Copy, Debug, Default)]
pub struct RoleShare {
    pub busy: f64,
    pub idle: f64,
    pub blocked: f64,
}

/// The labels of `wake_role_time_microseconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleTimeLabels {
    pub role: &'static str,
    pub state: &'static str,
}

/// The states a role's time is split into, as exported.
pub const ROLE_STATES: [&str; 3] = ["busy", "idle", "blocked"];

impl RoleClock {
    fn new(role: Role, family: &Family<RoleTimeLabels, Counter>) -> RoleClock {
        let counter =
            |state| family.get_or_create(&RoleTimeLabels { role: role.name(), state }).clone();
        RoleClock {
            busy_us: counter("busy"),
            idle_us: counter("idle"),
            blocked_us: counter("blocked"),
        }
    }

    pub fn busy(&self, since: Instant) {
        self.busy_us.inc_by(micros(since.elapsed()));
    }

    pub fn idle(&self, since: Instant) {
        self.idle_us.inc_by(micros(since.elapsed()));
    }

    pub fn blocked(&self, since: Instant) {
        self.blocked_us.inc_by(micros(since.elapsed()));
    }

    /// Totals so far: (busy, idle, blocked) microseconds.
    pub fn totals(&self) -> (u64, u64, u64) {
        (self.busy_us.get(), self.idle_us.get(), self.blocked_us.get())
    }

    /// Shares of the time since `previous` totals.
    pub fn share_since(&self, previous: &mut (u64, u64, u64)) -> RoleShare {
        let now = self.totals();
        let share = RoleShare::between(*previous, now);
        *previous = now;
        share
    }
}

impl RoleShare {
    /// The shares of the time between two (busy, idle, blocked) totals.
    pub fn between(before: (u64, u64, u64), after: (u64, u64, u64)) -> RoleShare {
        let delta = (
            after.0.saturating_sub(before.0),
            after.1.saturating_sub(before.1),
            after.2.saturating_sub(before.2),
        );
        let total = (delta.0 + delta.1 + delta.2).max(1) as f64;
        RoleShare {
            busy: delta.0 as f64 / total,
            idle: delta.1 as f64 / total,
            blocked: delta.2 as f64 / total,
        }
    }
}

/// The clocks of the roles the status line and `/metrics` report.
#[derive(Debug)]
pub struct RoleClocks {
    family: Family<RoleTimeLabels, Counter>,
    pub consensus: RoleClock,
    pub execution: RoleClock,
    pub commit: RoleClock,
}

impl Default for RoleClocks {
    fn default() -> Self {
        let family = Family::default();
        RoleClocks {
            consensus: RoleClock::new(Role::Consensus, &family),
            execution: RoleClock::new(Role::Execution, &family),
            commit: RoleClock::new(Role::Commit, &family),
            family,
        }
    }
}

impl RoleClocks {
    /// Exports the clocks as `wake_role_time_microseconds_total{role, state}`.
    pub fn register(&self, metrics: &Metrics) {
        metrics.register(
            "role_time_microseconds",
            "Wall time of each pinned role, split into busy, idle (no input) and blocked (backpressure)",
            self.family.clone(),
        );
    }
}

/// CPU time of the calling thread in nanoseconds (0 if the clock cannot be
/// read; `wake bench consensus` checks that it can before a run).
pub fn thread_cpu_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid, writable timespec for the whole call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if rc != 0 {
        return 0;
    }
    (now.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(now.tv_nsec as u64)
}

/// Time the calling thread has spent runnable but waiting for a CPU, in
/// nanoseconds: the second field of `/proc/thread-self/schedstat` (0 where
/// the kernel has no schedstats). Off-CPU time minus this is time blocked
/// (the device, fsync, a lock).
pub fn thread_run_queue_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_profiles_parse_and_bad_ones_are_refused() {
        let dir = env!("CARGO_MANIFEST_DIR");
        let dev = Profile::load(&Path::new(dir).join("../hw-profiles/dev-2core.toml")).unwrap();
        assert_eq!(dev.cores(Role::Execution), &[1]);
        assert_eq!(dev.cores(Role::Commit), &[0]);
        // The server profile names cores this machine may not have: parse
        // it as text, then check what load() says about the core count.
        let server = Path::new(dir).join("../hw-profiles/server-16core.toml");
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        match Profile::load(&server) {
            Ok(p) => assert!(cores >= 16 && p.execution_threads == Some(11)),
            Err(e) => assert!(cores < 16 && e.to_string().contains("this machine has"), "{e}"),
        }
        let tmp = tempfile::tempdir().unwrap();
        let bad = tmp.path().join("bad.toml");
        std::fs::write(
            &bad,
            "name = \"x\"\n[cores]\nconsensus = []\nnetwork = [0]\nrpc = [0]\nexecution = [0]\ningest = [0]\n",
        )
        .unwrap();
        assert!(Profile::load(&bad).unwrap_err().to_string().contains("cores.consensus"));
        // `commit` may be left out: the commit thread shares the execution cores.
        let older = tmp.path().join("older.toml");
        std::fs::write(
            &older,
            "name = \"x\"\n[cores]\nconsensus = [0]\nnetwork = [0]\nrpc = [0]\nexecution = [1]\ningest = [0]\n",
        )
        .unwrap();
        assert_eq!(Profile::load(&older).unwrap().cores(Role::Commit), &[1]);
    }

    #[test]
    fn pinning_to_core_zero_works_and_is_inherited() {
        pin_current_thread(&[0]).unwrap();
        let child = std::thread::spawn(|| {
            // SAFETY: zeroed cpu_set_t is valid; sched_getaffinity fills it.
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            let rc = unsafe {
                libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set)
            };
            assert_eq!(rc, 0);
            // SAFETY: reading bits of an initialised set.
            (unsafe { libc::CPU_ISSET(0, &set) }, unsafe { libc::CPU_COUNT(&set) })
        });
        assert_eq!(child.join().unwrap(), (true, 1));
    }

    #[test]
    fn role_shares_add_up_and_are_exported() {
        let clocks = RoleClocks::default();
        let clock = &clocks.execution;
        clock.busy_us.inc_by(300);
        clock.idle_us.inc_by(600);
        clock.blocked_us.inc_by(100);
        let mut previous = (0, 0, 0);
        let share = clock.share_since(&mut previous);
        assert!((share.busy - 0.3).abs() < 1e-9 && (share.blocked - 0.1).abs() < 1e-9);
        assert_eq!(previous, (300, 600, 100));
        let metrics = Metrics::new();
        clocks.register(&metrics);
        let text = metrics.encode();
        for line in [
            "wake_role_time_microseconds_total{role=\"execution\",state=\"busy\"} 300",
            "wake_role_time_microseconds_total{role=\"execution\",state=\"blocked\"} 100",
            "wake_role_time_microseconds_total{role=\"consensus\",state=\"idle\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
