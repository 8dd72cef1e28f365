//! Where the agent's time goes, by stage, per record: decode (bytes to a typed view), state (the
//! tables a record updates), unwind (DWARF or frame-pointer stack to interned addresses), modules
//! (reading `/proc/PID/maps` and parsing new modules' unwind tables when a stack runs outside
//! the known ones) and describe (`/proc` and socket-table lookups for new fds), plus the periodic
//! tick. The benchmark's per-stage breakdown and `tracer_agent_stage_seconds_total` read it.
//!
//! Timing every record would cost several clock reads on records that take a few hundred
//! nanoseconds; one record in [`SAMPLE_EVERY`] is timed end to end instead, and a stage's total
//! is estimated as its sampled time times the sampling period (an unbiased estimate: which
//! record is timed does not depend on its kind). The tick runs a few times a second and is timed
//! every time.

use std::time::Instant;

/// One record in this many is timed.
pub const SAMPLE_EVERY: u64 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Decode = 0,
    State = 1,
    Unwind = 2,
    Modules = 3,
    Describe = 4,
    Tick = 5,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Decode,
        Stage::State,
        Stage::Unwind,
        Stage::Modules,
        Stage::Describe,
        Stage::Tick,
    ];

    /// The stage's name in `--stats` and the `stage` label.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::State => "state",
            Stage::Unwind => "unwind",
            Stage::Modules => "modules",
            Stage::Describe => "describe",
            Stage::Tick => "tick",
        }
    }
}

/// A sub-stage being timed.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    started: Instant,
    /// Sub-stage time of the record when this one started.
    inner_before: u64,
}

/// Sampled stage times.
#[derive(Clone, Debug, Default)]
pub struct StageClock {
    seen: u64,
    /// Records timed.
    pub sampled: u64,
    /// Nanoseconds measured per stage (sampled records only, except the tick).
    ns: [u64; 6],
    /// Set while a sampled record is handled: sub-stages time themselves only then.
    active: bool,
    /// Sub-stage time inside the record being handled, to subtract from its state time.
    inner_ns: u64,
}

impl StageClock {
    /// Whether the next record is timed.
    #[inline]
    pub fn sample_next(&mut self) -> bool {
        self.seen += 1;
        self.seen.is_multiple_of(SAMPLE_EVERY)
    }

    /// Starts timing a sub-stage of the record being handled (none when it is not sampled).
    /// Sub-stages may nest: each gets its own time, without its nested stages'.
    #[inline]
    pub fn start(&self) -> Option<Span> {
        self.active.then(|| Span {
            started: Instant::now(),
            inner_before: self.inner_ns,
        })
    }

    /// Ends a sub-stage started by [`StageClock::start`].
    #[inline]
    pub fn stop(&mut self, stage: Stage, span: Option<Span>) {
        if let Some(s) = span {
            let elapsed = s.started.elapsed().as_nanos() as u64;
            let nested = self.inner_ns - s.inner_before;
            let own = elapsed.saturating_sub(nested);
            self.ns[stage as usize] += own;
            self.inner_ns += own;
        }
    }

    /// Adds a sampled record's decode time.
    pub fn add_decode(&mut self, ns: u64) {
        self.ns[Stage::Decode as usize] += ns;
    }

    /// Marks the start of a sampled record's handling.
    pub fn begin_record(&mut self) {
        self.active = true;
        self.inner_ns = 0;
    }

    /// Ends a sampled record's handling, `total_ns` long: what the sub-stages did not take is
    /// the state's.
    pub fn end_record(&mut self, total_ns: u64) {
        self.active = false;
        self.sampled += 1;
        self.ns[Stage::State as usize] += total_ns.saturating_sub(self.inner_ns);
    }

    /// Adds a tick's time (ticks are all timed; what they spend in modules is the tick's).
    pub fn add_tick(&mut self, ns: u64) {
        self.ns[Stage::Tick as usize] += ns;
    }

    /// Estimated seconds spent per stage since start.
    pub fn seconds(&self, stage: Stage) -> f64 {
        let ns = self.ns[stage as usize] as f64;
        let scale = if stage == Stage::Tick { 1.0 } else { SAMPLE_EVERY as f64 };
        ns * scale / 1e9
    }

    /// Mean nanoseconds per record of a per-record stage (None before any record was timed).
    pub fn ns_per_record(&self, stage: Stage) -> Option<f64> {
        (stage != Stage::Tick && self.sampled > 0).then(|| self.ns[stage as usize] as f64 / self.sampled as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_one_record_in_the_period() {
        let mut c = StageClock::default();
        let timed = (0..SAMPLE_EVERY * 10).filter(|_| c.sample_next()).count();
        assert_eq!(timed as u64, 10);
    }

    #[test]
    fn state_is_what_the_sub_stages_did_not_take() {
        let mut c = StageClock::default();
        // Not active: sub-stages are not timed.
        assert!(c.start().is_none());
        c.begin_record();
        let t = c.start();
        assert!(t.is_some());
        std::thread::sleep(std::time::Duration::from_millis(2));
        c.stop(Stage::Unwind, t);
        let unwind = c.ns[Stage::Unwind as usize];
        assert!(unwind >= 2_000_000, "{unwind}");
        c.end_record(unwind + 500);
        assert_eq!(c.ns[Stage::State as usize], 500);
        assert_eq!(c.ns_per_record(Stage::Unwind), Some(unwind as f64));
        assert!((c.seconds(Stage::State) - 500.0 * SAMPLE_EVERY as f64 / 1e9).abs() < 1e-12);
        c.add_tick(1_000);
        assert_eq!(c.seconds(Stage::Tick), 1e-6);
        assert_eq!(c.ns_per_record(Stage::Tick), None);
        // Nested stages: each keeps its own time only.
        c.begin_record();
        let outer = c.start();
        let inner = c.start();
        std::thread::sleep(std::time::Duration::from_millis(2));
        c.stop(Stage::Modules, inner);
        c.stop(Stage::Unwind, outer);
        let modules = c.ns[Stage::Modules as usize];
        let unwind_now = c.ns[Stage::Unwind as usize] - unwind;
        assert!(modules >= 2_000_000, "{modules}");
        assert!(
            unwind_now < 1_000_000,
            "the outer stage kept its nested stage's time: {unwind_now}"
        );
        c.end_record(modules + unwind_now + 7);
        assert_eq!(c.ns[Stage::State as usize], 507);
        // Ended: sub-stages stop timing themselves.
        assert!(c.start().is_none());
    }
}
