//! `tracer top`: a live, full-screen view for the person at the terminal (ratatui over
//! crossterm), refreshed every second like top. It is a client of the same ingest task and
//! analysis as the agent: each refresh asks for the report `/report` would serve, and the rows
//! are computed from it (see `rows`); Enter resolves one process's stacks on the symbolizer
//! worker. When stdout is not a terminal it prints plain lines instead (like `top -b`).

mod detail;
pub mod rows;
mod view;

use std::{
    io::{IsTerminal, Write},
    time::Instant,
};

use anyhow::Context as _;
use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tokio::signal::unix::{SignalKind, signal as unix_signal};

use super::capture::{EXITED_GRACE, STACK_BUDGET, probe_options};
use crate::{
    cli::TopArgs,
    model::{Report, ReportOptions},
    output,
    procfs::process as proc,
    runtime::{
        symbolizer::SymbolizerWorker,
        task::{Client, IngestTask, ReportSnapshot, TaskOptions},
    },
    state::StackId,
    tracker::policy::{self, Policy},
};
use rows::{Column, ProcessRow};

/// Everything on screen; drawing reads it (see `view`).
pub struct App {
    pub report: Option<Report>,
    pub rows: Vec<ProcessRow>,
    pub sort: Column,
    pub reverse: bool,
    pub filter: String,
    pub editing_filter: bool,
    /// The selected process. Until the user moves the selection it is the top row, whatever
    /// process that is (like top); once moved, it follows its process across refreshes.
    pub selected_pid: Option<u32>,
    pub pinned: bool,
    /// Enter opened this process.
    pub detail: Option<u32>,
    pub detail_scroll: u16,
    pub color: bool,
    pub scope: String,
    started: Instant,
}

/// What a key asks for.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    None,
    Quit,
    /// New data is needed now (a process opened: its stacks).
    Refresh,
}

impl App {
    fn new(sort: Column, color: bool, scope: String) -> Self {
        App {
            report: None,
            rows: Vec::new(),
            sort,
            reverse: false,
            filter: String::new(),
            editing_filter: false,
            selected_pid: None,
            pinned: false,
            detail: None,
            detail_scroll: 0,
            color,
            scope,
            started: Instant::now(),
        }
    }

    /// The rows shown: filtered by comm, sorted.
    pub fn visible(&self) -> Vec<ProcessRow> {
        let mut v = rows::filtered(&self.rows, &self.filter);
        rows::sort(&mut v, self.sort, self.reverse);
        v
    }

    pub fn selected_index(&self, visible: &[ProcessRow]) -> usize {
        if !self.pinned {
            return 0;
        }
        self.selected_pid
            .and_then(|p| visible.iter().position(|r| r.pid == p))
            .unwrap_or(0)
    }

    pub fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn move_selection(&mut self, delta: isize) {
        let visible = self.visible();
        if visible.is_empty() {
            return;
        }
        let i = self.selected_index(&visible) as isize + delta;
        let i = i.clamp(0, visible.len() as isize - 1) as usize;
        self.selected_pid = Some(visible[i].pid);
        self.pinned = true;
    }

    fn key(&mut self, k: KeyEvent) -> Action {
        if k.kind != KeyEventKind::Press {
            return Action::None;
        }
        if k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL) {
            return Action::Quit;
        }
        if self.editing_filter {
            match k.code {
                KeyCode::Char(c) => self.filter.push(c),
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Esc => {
                    self.filter.clear();
                    self.editing_filter = false;
                }
                KeyCode::Enter => self.editing_filter = false,
                _ => {}
            }
            return Action::None;
        }
        if self.detail.is_some() {
            match k.code {
                KeyCode::Char('q') => return Action::Quit,
                KeyCode::Esc | KeyCode::Enter | KeyCode::Backspace | KeyCode::Left => {
                    self.detail = None;
                    self.detail_scroll = 0;
                }
                KeyCode::Up => self.detail_scroll = self.detail_scroll.saturating_sub(1),
                KeyCode::Down => self.detail_scroll = self.detail_scroll.saturating_add(1),
                KeyCode::PageUp => self.detail_scroll = self.detail_scroll.saturating_sub(10),
                KeyCode::PageDown => self.detail_scroll = self.detail_scroll.saturating_add(10),
                _ => {}
            }
            return Action::None;
        }
        match k.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Up => self.move_selection(-1),
            KeyCode::Down => self.move_selection(1),
            KeyCode::PageUp => self.move_selection(-10),
            KeyCode::PageDown => self.move_selection(10),
            KeyCode::Home => self.move_selection(isize::MIN / 2),
            KeyCode::End => self.move_selection(isize::MAX / 2),
            KeyCode::Enter => {
                let visible = self.visible();
                if let Some(r) = visible.get(self.selected_index(&visible)) {
                    self.detail = Some(r.pid);
                    self.selected_pid = Some(r.pid);
                    return Action::Refresh;
                }
            }
            KeyCode::Char('/') => self.editing_filter = true,
            KeyCode::Char('r') => self.reverse = !self.reverse,
            KeyCode::Char('<') | KeyCode::Char('>') => {
                let i = Column::ALL.iter().position(|c| *c == self.sort).unwrap_or(0);
                let n = Column::ALL.len();
                let j = if k.code == KeyCode::Char('>') {
                    (i + 1) % n
                } else {
                    (i + n - 1) % n
                };
                self.sort = Column::ALL[j];
                self.pinned = false;
            }
            KeyCode::Char(c) => {
                if let Some(col) = Column::from_key(c) {
                    self.sort = col;
                    self.reverse = false;
                    self.pinned = false;
                }
            }
            _ => {}
        }
        // A new sort or filter keeps the selected process if it is still shown, else the top.
        let visible = self.visible();
        if !self.selected_pid.is_some_and(|p| visible.iter().any(|r| r.pid == p)) {
            self.selected_pid = visible.first().map(|r| r.pid);
        }
        Action::None
    }

    /// A new report; the opened process's stacks resolved.
    async fn refresh(
        &mut self,
        client: &Client,
        symbolizer: &SymbolizerWorker,
        opts: &ReportOptions,
    ) -> anyhow::Result<()> {
        let ReportSnapshot { report, stacks } = client
            .report(opts.clone())
            .await
            .map_err(|_| anyhow::anyhow!("tracing stopped"))?;
        // Only the opened process's stacks are resolved: the table needs none.
        let report = match self.detail {
            Some(pid) => {
                let wanted: std::collections::HashSet<StackId> = detail::stack_ids(&report, pid).into_iter().collect();
                let stacks = stacks.into_iter().filter(|(id, _)| wanted.contains(id)).collect();
                symbolizer.report(ReportSnapshot { report, stacks }).await
            }
            None => report,
        };
        self.rows = rows::rows(&report);
        self.report = Some(report);
        let visible = self.visible();
        if !self.selected_pid.is_some_and(|p| visible.iter().any(|r| r.pid == p)) {
            self.selected_pid = visible.first().map(|r| r.pid);
        }
        Ok(())
    }
}

/// `tracer top`. Returns the exit code.
pub async fn run(args: TopArgs) -> anyhow::Result<i32> {
    for pid in &args.pids {
        if !proc::exists(*pid) {
            anyhow::bail!("PID {pid} does not exist (or has already exited)");
        }
    }
    let policy = Policy::from_args(&args.pids, &args.comms, &[]);
    let mut probe = probe_options(&args.capture);
    if policy.whole_host() && args.capture.ring_buffer_size.is_none() {
        probe.ring_buffer_bytes = 16 << 20;
    }
    probe.stack_budget = args
        .capture
        .stack_budget
        .unwrap_or(if policy.whole_host() { STACK_BUDGET } else { 0 });
    probe.trace_all = policy.whole_host();
    probe.discover_exec = policy.discovers_at_exec();
    let symbolizer = SymbolizerWorker::spawn().context("cannot start the symbolizer")?;
    let scope = output::scope::describe(&policy);
    let tick = args.interval;
    let setup_policy = policy.clone();
    let task = tokio::task::spawn_blocking(move || {
        IngestTask::start(probe, TaskOptions { tick }, move |agent| {
            let t = &mut agent.tracker;
            t.state.sample_gap_ns = 2 * tick.as_nanos() as u64;
            t.state.exited_grace_ns = Some(EXITED_GRACE.as_nanos() as u64);
            t.policy = setup_policy.clone();
            agent.select_comms(&setup_policy.comms)?;
            policy::seed(agent, &setup_policy)
        })
    })
    .await
    .context("starting the ingest task")?
    .context("cannot start tracing")?;
    let client = task.client();
    let opts = ReportOptions {
        lock_hold_ns: args.capture.lock_hold.as_nanos() as u64,
        ..Default::default()
    };
    let to_terminal = std::io::stdout().is_terminal();
    let mut app = App::new(args.sort, crate::output::color_wanted(to_terminal), scope);
    let result = if to_terminal {
        tui(&mut app, &args, &client, &symbolizer, &opts).await
    } else {
        plain(&mut app, &args, &client, &symbolizer, &opts).await
    };
    drop(task);
    result.map(|()| 0)
}

/// Plain lines, one table per refresh (stdout is a pipe or a file).
async fn plain(
    app: &mut App,
    args: &TopArgs,
    client: &Client,
    symbolizer: &SymbolizerWorker,
    opts: &ReportOptions,
) -> anyhow::Result<()> {
    let mut interrupt = unix_signal(SignalKind::interrupt())?;
    let mut terminate = unix_signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(args.interval);
    let mut n = 0u64;
    let mut out = std::io::stdout();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = interrupt.recv() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
        }
        app.refresh(client, symbolizer, opts).await?;
        let Some(report) = &app.report else { continue };
        writeln!(
            out,
            "tracer top after {:.1}s, {}: {}",
            app.elapsed_s(),
            app.scope,
            rows::system_line(report)
        )?;
        writeln!(out, "{}", rows::plain_header().trim_end())?;
        for r in app.visible() {
            writeln!(out, "{}", rows::plain_line(&r))?;
        }
        writeln!(out)?;
        out.flush()?;
        n += 1;
        if args.count.is_some_and(|c| n >= c) {
            return Ok(());
        }
    }
}

/// The full-screen view until `q`, Ctrl-C, SIGINT or SIGTERM; the terminal is restored on
/// every way out (ratatui's panic hook covers a panic).
async fn tui(
    app: &mut App,
    args: &TopArgs,
    client: &Client,
    symbolizer: &SymbolizerWorker,
    opts: &ReportOptions,
) -> anyhow::Result<()> {
    let mut interrupt = unix_signal(SignalKind::interrupt())?;
    let mut terminate = unix_signal(SignalKind::terminate())?;
    // Keys are read on a thread of their own (crossterm's read blocks); it ends with the process.
    let (tx, mut keys) = tokio::sync::mpsc::unbounded_channel::<Event>();
    std::thread::Builder::new()
        .name("tracer-top-keys".into())
        .spawn(move || {
            while let Ok(ev) = crossterm::event::read() {
                if tx.send(ev).is_err() {
                    break;
                }
            }
        })
        .context("starting the key reader")?;
    let mut terminal = ratatui::try_init().context("cannot take over the terminal")?;
    let result = async {
        let mut tick = tokio::time::interval(args.interval);
        loop {
            tokio::select! {
                _ = tick.tick() => app.refresh(client, symbolizer, opts).await?,
                ev = keys.recv() => match ev {
                    Some(Event::Key(k)) => match app.key(k) {
                        Action::Quit => return Ok(()),
                        Action::Refresh => app.refresh(client, symbolizer, opts).await?,
                        Action::None => {}
                    },
                    Some(_) => {}
                    None => return Ok(()),
                },
                _ = interrupt.recv() => return Ok(()),
                _ = terminate.recv() => return Ok(()),
            }
            terminal.draw(|f| view::draw(f, app))?;
        }
    }
    .await;
    ratatui::restore();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: u32, fds: usize, growth: f64) -> ProcessRow {
        ProcessRow {
            pid,
            comm: format!("p{pid}"),
            fds,
            soft_limit: Some(1024),
            kinds: "file:1".into(),
            growth_per_min: growth,
            time_to_emfile_s: None,
            suspects: 0,
            zombies: 0,
            sysv: 0,
            lock_waits: 0,
            problems: 0,
            exited: false,
        }
    }

    fn press(app: &mut App, c: KeyCode) -> Action {
        app.key(KeyEvent::new(c, KeyModifiers::NONE))
    }

    #[test]
    fn keys_sort_filter_select_and_quit() {
        let mut app = App::new(Column::Fds, false, "test".into());
        app.rows = vec![row(1, 300, 0.0), row(2, 50, 600.0), row(3, 10, 5.0)];
        let pids = |app: &App| app.visible().iter().map(|r| r.pid).collect::<Vec<_>>();
        assert_eq!(pids(&app), [1, 2, 3], "most fds first");
        assert_eq!(press(&mut app, KeyCode::Char('g')), Action::None);
        assert_eq!(pids(&app), [2, 3, 1], "fastest growth first");
        assert_eq!(app.selected_index(&app.visible()), 0, "the top row is selected");
        press(&mut app, KeyCode::Char('r'));
        assert_eq!(pids(&app), [1, 3, 2], "reversed");
        press(&mut app, KeyCode::Char('p'));
        press(&mut app, KeyCode::Down);
        assert_eq!(app.selected_pid, Some(2));
        // The selection follows its process once moved.
        press(&mut app, KeyCode::Char('>'));
        assert_eq!(app.sort, Column::Comm);
        for c in ['/', 'p', '3'] {
            press(&mut app, KeyCode::Char(c));
        }
        press(&mut app, KeyCode::Enter);
        assert_eq!(pids(&app), [3], "filtered by comm");
        assert_eq!(press(&mut app, KeyCode::Enter), Action::Refresh);
        assert_eq!(app.detail, Some(3));
        assert_eq!(
            press(&mut app, KeyCode::Char('g')),
            Action::None,
            "keys do not sort in the detail view"
        );
        assert_eq!(app.sort, Column::Comm);
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.detail, None);
        assert_eq!(press(&mut app, KeyCode::Char('q')), Action::Quit);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(app.key(ctrl_c), Action::Quit);
    }

    #[test]
    fn plain_lines_fit_80_columns_and_escape_names() {
        let mut r = row(4_194_303, 123_456, 12_345.6);
        r.comm = crate::output::escape::escape_bytes(b"evil\n\x1b[2Jname-long");
        r.kinds = String::new();
        let line = rows::plain_line(&r);
        assert!(line.chars().count() <= 80, "{line}");
        assert!(!line.contains('\x1b') && !line.contains('\n'), "{line:?}");
        assert!(rows::plain_header().trim_end().chars().count() <= 80);
    }
}
