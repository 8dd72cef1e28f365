//! Signals per receiving process (sent, delivered, ignored, merged into a pending one) and the
//! zombies a parent leaves unreaped. Standard signals do not queue: SIGCHLD sent for 200 exits
//! while one is pending is delivered once, and a parent that reaps one child per SIGCHLD leaves
//! the rest as zombies. Showing the two counts side by side is the diagnosis.

use std::collections::BTreeMap;

use tracer_common::signal::result;

use super::series::Series;

/// Counts for one signal number received by one process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignalCounts {
    pub generated: u64,
    /// Taken by the process to run its handler or default action (`signal_deliver`).
    pub delivered: u64,
    /// Discarded at once (SIG_IGN, or a default action of "ignore" such as SIGCHLD's).
    pub ignored: u64,
    /// Sent while the same standard signal was pending: merged into it, never seen separately.
    pub coalesced: u64,
    /// Could not be queued (real-time queue overflow).
    pub failed: u64,
}

impl SignalCounts {
    pub fn on_generate(&mut self, result_code: i32) {
        self.generated += 1;
        match result_code {
            result::IGNORED => self.ignored += 1,
            result::ALREADY_PENDING => self.coalesced += 1,
            result::OVERFLOW_FAIL => self.failed += 1,
            _ => {}
        }
    }
}

/// Children of one parent that exited and were not reaped yet.
#[derive(Clone, Debug, Default)]
pub struct Zombies {
    /// Child pid -> when it exited.
    pub pending: BTreeMap<u32, u64>,
    pub max: u32,
    pub reaped: u64,
    /// Sum of exit-to-reap delays of reaped children.
    pub reap_delay_ns: u64,
    pub samples: Series,
}

impl Zombies {
    pub fn exited(&mut self, child: u32, now_ns: u64) {
        self.pending.insert(child, now_ns);
        self.max = self.max.max(self.pending.len() as u32);
    }

    pub fn reaped(&mut self, child: u32, now_ns: u64) -> bool {
        match self.pending.remove(&child) {
            Some(exited) => {
                self.reaped += 1;
                self.reap_delay_ns += now_ns.saturating_sub(exited);
                true
            }
            None => false,
        }
    }

    pub fn sample(&mut self, now_ns: u64, window_ns: Option<u64>) {
        if self.samples.is_empty() && self.pending.is_empty() && self.reaped == 0 {
            return;
        }
        self.samples.sample(now_ns, self.pending.len() as u32, window_ns);
    }
}

/// A signal action installed with `rt_sigaction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigHandler {
    /// `sa_handler` (0: `SIG_DFL`, 1: `SIG_IGN`).
    pub address: u64,
    /// The address as a one-frame stack, for symbolizing (none for SIG_DFL/SIG_IGN).
    pub stack: super::StackId,
}

/// Peak zombies from which a parent whose SIGCHLDs merged is flagged, even if it reaped them all
/// later: one `waitpid` per SIGCHLD leaves a child per merged signal behind.
pub const ZOMBIE_PILE: u32 = 10;

impl Zombies {
    /// The "one waitpid per SIGCHLD" bug: zombies piled up (at least [`ZOMBIE_PILE`]) while
    /// SIGCHLDs merged into pending ones.
    pub fn piled(&self, sigchld_merged: u64) -> bool {
        self.max >= ZOMBIE_PILE && sigchld_merged > 0
    }
}

/// Signals received by one process, by number.
pub type SignalTable = BTreeMap<i32, SignalCounts>;

/// `SIGCHLD` on x86_64.
pub const SIGCHLD: i32 = 17;

/// The name of a signal number on x86_64 Linux (`kill -l`).
pub fn signal_name(sig: i32) -> String {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match sig {
        1..=31 => NAMES[(sig - 1) as usize].to_owned(),
        32..=64 => format!("SIGRTMIN+{}", sig - 32),
        _ => format!("signal {sig}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_generate_result() {
        let mut c = SignalCounts::default();
        for r in [
            result::DELIVERED,
            result::ALREADY_PENDING,
            result::ALREADY_PENDING,
            result::IGNORED,
            result::OVERFLOW_FAIL,
        ] {
            c.on_generate(r);
        }
        assert_eq!((c.generated, c.coalesced, c.ignored, c.failed), (5, 2, 1, 1));
    }

    #[test]
    fn zombies_pending_max_and_reap_delay() {
        let mut z = Zombies::default();
        z.sample(1, None);
        assert!(z.samples.is_empty(), "no activity, no samples");
        z.exited(100, 10);
        z.exited(101, 20);
        assert!(z.reaped(100, 30));
        assert!(!z.reaped(999, 30), "not a child of this parent");
        z.sample(40, None);
        assert_eq!((z.pending.len(), z.max, z.reaped, z.reap_delay_ns), (1, 2, 1, 20));
        assert_eq!(z.samples.points(), vec![(40, 1)]);
    }

    #[test]
    fn names() {
        assert_eq!(signal_name(SIGCHLD), "SIGCHLD");
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(34), "SIGRTMIN+2");
        assert_eq!(signal_name(0), "signal 0");
    }
}
