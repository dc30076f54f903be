//! A bar chart of a report as a standalone SVG file, built by hand: horizontal bars on a
//! logarithmic axis (taskq and Celery differ by orders of magnitude), one panel for
//! throughput and one for round-trip latency.

use std::fmt::Write as _;

use crate::report::{Figure, Report, System};

const WIDTH: f64 = 960.0;
const LABEL_WIDTH: f64 = 340.0;
const BAR_AREA: f64 = 500.0;
const ROW: f64 = 22.0;
const PANEL_GAP: f64 = 56.0;

/// One bar: its label, value and colour.
struct Bar {
    label: String,
    value: f64,
    system: System,
}

/// The SVG text of `report`'s chart.
pub fn render(report: &Report) -> String {
    let throughput = throughput_bars(report);
    let latency = latency_bars(report);
    let mut body = String::new();
    let mut y = 58.0;
    let m = &report.machine;
    let title = format!(
        "taskq benchmark: {} cores, Redis {}, load at start {:.2}",
        m.cores, m.redis_version, m.loadavg_start[0]
    );
    let _ = writeln!(
        body,
        r#"<text x="10" y="24" class="title">{}</text>"#,
        esc(&title)
    );
    let _ = writeln!(
        body,
        r#"<rect x="740" y="13" width="12" height="12" class="taskq"/><text x="757" y="24">taskq</text><rect x="820" y="13" width="12" height="12" class="celery"/><text x="837" y="24">Python Celery</text>"#
    );
    if !throughput.is_empty() {
        y = panel(
            &mut body,
            y,
            "Throughput, tasks/s (log scale)",
            &throughput,
            "",
        );
        y += PANEL_GAP;
    }
    if !latency.is_empty() {
        y = panel(
            &mut body,
            y,
            "delay() → get() round trip, ms (log scale, lower is better)",
            &latency,
            " ms",
        );
    }
    let height = y + 20.0;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">
<style>.title{{font-size:15px;font-weight:bold}} .panel{{font-size:13px;font-weight:bold}} .axis{{fill:#666;font-size:10px}} .taskq{{fill:#2b6cb0}} .celery{{fill:#c05621}} .redis{{fill:#718096}}</style>
<rect width="100%" height="100%" fill="white"/>
{body}</svg>
"##
    )
}

fn throughput_bars(report: &Report) -> Vec<Bar> {
    report
        .rows
        .iter()
        .filter_map(|r| match &r.figure {
            Figure::Throughput(t) => Some(Bar {
                label: format!("{}: {}", r.system.name(), r.label),
                value: t.per_sec,
                system: r.system,
            }),
            _ => None,
        })
        .collect()
}

fn latency_bars(report: &Report) -> Vec<Bar> {
    let mut bars = Vec::new();
    for r in &report.rows {
        if let Figure::Latency(l) = &r.figure {
            for (name, value) in [
                ("p50", l.round_trip.p50_ms),
                ("p99", l.round_trip.p99_ms),
                ("p99.9", l.round_trip.p999_ms),
            ] {
                bars.push(Bar {
                    label: format!("{} {name} at {:.0}/s", r.system.name(), l.target_rate),
                    value,
                    system: r.system,
                });
            }
        }
    }
    bars
}

/// Draws one panel starting at `top`; returns where it ends.
fn panel(out: &mut String, top: f64, title: &str, bars: &[Bar], unit: &str) -> f64 {
    let (lo, hi) = decades(bars);
    let x_of = |v: f64| {
        LABEL_WIDTH + BAR_AREA * (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10())
    };
    let _ = writeln!(
        out,
        r#"<text x="10" y="{top}" class="panel">{}</text>"#,
        esc(title)
    );
    let bars_top = top + 12.0;
    let bottom = bars_top + ROW * bars.len() as f64;
    let mut tick = lo;
    while tick <= hi * 1.001 {
        let x = x_of(tick);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{bars_top}" x2="{x:.1}" y2="{bottom}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" class="axis" text-anchor="middle">{}</text>"##,
            bottom + 12.0,
            short(tick)
        );
        tick *= 10.0;
    }
    for (i, bar) in bars.iter().enumerate() {
        let y = bars_top + ROW * i as f64;
        let end = x_of(bar.value);
        let class = match bar.system {
            System::Taskq => "taskq",
            System::Celery => "celery",
            System::Redis => "redis",
        };
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{LABEL_WIDTH}" y="{:.1}" width="{:.1}" height="{:.1}" class="{class}"/><text x="{:.1}" y="{:.1}">{}{unit}</text>"#,
            LABEL_WIDTH - 6.0,
            y + 15.0,
            esc(&bar.label),
            y + 3.0,
            (end - LABEL_WIDTH).max(1.0),
            ROW - 6.0,
            end + 4.0,
            y + 15.0,
            value_text(bar.value)
        );
    }
    bottom + 16.0
}

/// The powers of ten around the bars' values.
fn decades(bars: &[Bar]) -> (f64, f64) {
    let values = bars.iter().map(|b| b.value).filter(|v| *v > 0.0);
    let min = values.clone().fold(f64::INFINITY, f64::min);
    let max = values.fold(0.0, f64::max);
    if !min.is_finite() || max <= 0.0 {
        return (1.0, 10.0);
    }
    let lo = 10f64.powf(min.log10().floor());
    let hi = 10f64.powf(max.log10().ceil()).max(lo * 10.0);
    (lo, hi)
}

fn short(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{}M", v / 1e6),
        v if v >= 1e3 => format!("{}k", v / 1e3),
        v => format!("{v}"),
    }
}

fn value_text(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
