//! Drawing `tracer top` (ratatui): the system line, the process table or one process's sites,
//! and the keys at the bottom. Fits 80x24; colour only when the App says so (a terminal and
//! no NO_COLOR); selection and headings use reverse video and bold, which need no colour.

use ratatui::{
    Frame,
    layout::{Constraint, Layout},
    style::{Color, Modifier, Style},
    text::Line,
    widgets::{Cell, Paragraph, Row, Table, TableState},
};

use super::{App, detail, rows::Column};

pub fn draw(f: &mut Frame, app: &App) {
    let [top, status, body, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let system = app
        .report
        .as_ref()
        .map_or_else(|| "starting...".to_owned(), super::rows::system_line);
    f.render_widget(Paragraph::new(format!("tracer top: {system}")), top);
    let order = if app.reverse { "reversed" } else { "" };
    let filter = if app.editing_filter {
        format!("  filter comm: {}_", app.filter)
    } else if app.filter.is_empty() {
        String::new()
    } else {
        format!("  filter comm: {}", app.filter)
    };
    f.render_widget(
        Paragraph::new(format!(
            "{} | sort {} {order}{filter} | {:.0}s",
            app.scope,
            app.sort.title(),
            app.elapsed_s()
        )),
        status,
    );
    let red = |on: bool| {
        if on && app.color {
            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        }
    };
    let keys = match app.detail {
        Some(_) => "Esc/Enter: back  Up/Down: scroll  q: quit".to_owned(),
        None => {
            let sort: String = Column::ALL.iter().map(|c| format!("{} ", c.key())).collect();
            format!(
                "q quit  Enter stack  / filter  r reverse  < > sort  {}",
                sort.trim_end()
            )
        }
    };
    f.render_widget(
        Paragraph::new(keys).style(Style::default().add_modifier(Modifier::REVERSED)),
        help,
    );

    if let (Some(pid), Some(report)) = (app.detail, &app.report) {
        let lines: Vec<Line> = detail::lines(report, pid)
            .into_iter()
            .map(|(text, suspect)| Line::styled(text, red(suspect)))
            .collect();
        f.render_widget(Paragraph::new(lines).scroll((app.detail_scroll, 0)), body);
        return;
    }
    let visible = app.visible();
    let header = Row::new(Column::ALL.iter().map(|c| {
        let style = if *c == app.sort {
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::BOLD)
        };
        Cell::from(c.title()).style(style)
    }));
    let rows = visible
        .iter()
        .map(|r| Row::new(Column::ALL.iter().map(|c| Cell::from(c.cell(r)))).style(red(r.flagged())));
    let widths = Column::ALL.iter().map(|c| match c {
        Column::Kinds => Constraint::Fill(1),
        c => Constraint::Length(c.width()),
    });
    let table = Table::new(rows, widths)
        .header(header)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(Some(app.selected_index(&visible)));
    f.render_stateful_widget(table, body, &mut state);
}
