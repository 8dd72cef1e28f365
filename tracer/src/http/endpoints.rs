//! `--endpoints metrics,pprof,report`: which groups of endpoints are served (all by default), so
//! that a team can expose metrics on the pod network and keep `/report` to itself. `/healthy`,
//! `/ready` and the index `/` are always served; the others answer 404 as if they did not exist.

/// A group of endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/metrics`.
    Metrics,
    /// `/debug/pprof/*` and `/debug/folded/*`: the profiles.
    Pprof,
    /// `/report`.
    Report,
}

impl Endpoint {
    const ALL: [Endpoint; 3] = [Endpoint::Metrics, Endpoint::Pprof, Endpoint::Report];

    fn name(self) -> &'static str {
        match self {
            Endpoint::Metrics => "metrics",
            Endpoint::Pprof => "pprof",
            Endpoint::Report => "report",
        }
    }

    /// The group a path belongs to; None for the ones always served (and unknown paths).
    pub fn of_path(path: &str) -> Option<Endpoint> {
        if path == "/metrics" {
            Some(Endpoint::Metrics)
        } else if path.starts_with("/debug/pprof/") || path.starts_with("/debug/folded/") {
            Some(Endpoint::Pprof)
        } else if path == "/report" || path == "/escalate" {
            Some(Endpoint::Report)
        } else {
            None
        }
    }
}

/// The groups served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    metrics: bool,
    pprof: bool,
    report: bool,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            metrics: true,
            pprof: true,
            report: true,
        }
    }
}

impl Endpoints {
    /// `metrics,pprof,report` in any order and combination (at least one).
    pub fn parse(s: &str) -> Result<Endpoints, String> {
        let mut e = Endpoints {
            metrics: false,
            pprof: false,
            report: false,
        };
        for word in s.split(',').map(str::trim) {
            match Endpoint::ALL.iter().find(|g| g.name() == word) {
                Some(g) => *e.slot(*g) = true,
                None => {
                    return Err(format!(
                        "{word:?} is not an endpoint group (metrics, pprof, report; /healthy and /ready are always served)"
                    ));
                }
            }
        }
        Ok(e)
    }

    fn slot(&mut self, g: Endpoint) -> &mut bool {
        match g {
            Endpoint::Metrics => &mut self.metrics,
            Endpoint::Pprof => &mut self.pprof,
            Endpoint::Report => &mut self.report,
        }
    }

    pub fn serves(&self, g: Endpoint) -> bool {
        match g {
            Endpoint::Metrics => self.metrics,
            Endpoint::Pprof => self.pprof,
            Endpoint::Report => self.report,
        }
    }

    /// Whether `path` is answered (unknown paths are, with the usual 404).
    pub fn allows(&self, path: &str) -> bool {
        Endpoint::of_path(path).is_none_or(|g| self.serves(g))
    }

    /// `metrics,pprof` (for messages).
    pub fn names(&self) -> String {
        Endpoint::ALL
            .iter()
            .filter(|g| self.serves(**g))
            .map(|g| g.name())
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_serves_everything() {
        let all = Endpoints::default();
        for p in [
            "/metrics",
            "/debug/pprof/fds",
            "/debug/folded/fds",
            "/report",
            "/healthy",
            "/ready",
            "/",
            "/x",
        ] {
            assert!(all.allows(p), "{p}");
        }
        assert_eq!(Endpoints::parse("report,metrics,pprof"), Ok(all));
        assert_eq!(all.names(), "metrics,pprof,report");
    }

    #[test]
    fn a_selection_hides_the_rest_and_keeps_health() {
        let m = Endpoints::parse("metrics").unwrap_or_else(|e| panic!("{e}"));
        assert!(m.allows("/metrics"));
        for p in ["/debug/pprof/fds", "/debug/pprof/locks", "/debug/folded/fds", "/report"] {
            assert!(!m.allows(p), "{p}");
        }
        for p in ["/healthy", "/ready", "/", "/nope"] {
            assert!(m.allows(p), "{p}");
        }
        let p = Endpoints::parse("pprof, report").unwrap_or_else(|e| panic!("{e}"));
        assert!(!p.allows("/metrics") && p.allows("/debug/pprof/sysv") && p.allows("/report"));
        // Lookalikes are not the endpoints.
        assert!(!p.serves(Endpoint::Metrics) && Endpoint::of_path("/metricsx").is_none());
        assert_eq!(Endpoint::of_path("/reports"), None);
    }

    #[test]
    fn unknown_or_empty_groups_are_refused() {
        for bad in ["", "metrics,", "all", "healthy", "Metrics", "metrics;pprof"] {
            let e = Endpoints::parse(bad);
            assert!(e.is_err(), "{bad}: {e:?}");
        }
        assert!(
            Endpoints::parse("x")
                .err()
                .is_some_and(|e| e.contains("metrics, pprof, report"))
        );
    }
}
