//! Spend per day as a bar chart, drawn on the server as inline SVG: no chart library,
//! no script, and nothing the CSP has to allow (presentation attributes, no `style`).

use maud::{html, Markup};

use super::layout::{date, dollars};

const WIDTH: u64 = 900;
const HEIGHT: u64 = 180;
/// Room for the axis labels.
const LEFT: u64 = 70;
const BOTTOM: u64 = 22;

/// Bars for `days` (day number, nano-dollars), oldest first; each bar's tooltip gives
/// the day and the exact amount.
pub fn spend_per_day(days: &[(i64, u64)]) -> Markup {
    let top = days.iter().map(|d| d.1).max().unwrap_or(0);
    let max = top.max(1);
    let plot_w = WIDTH - LEFT - 10;
    let plot_h = HEIGHT - BOTTOM - 10;
    let slot = plot_w / (days.len() as u64).max(1);
    let bar_w = slot.saturating_sub(2).max(1);
    let total: u64 = days.iter().map(|d| d.1).sum();
    html! {
        svg.chart viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img"
            aria-label={ "Spend per day: " (dollars(total)) " in " (days.len()) " days" } {
            line x1=(LEFT) y1=(10) x2=(LEFT) y2=(10 + plot_h) {}
            line x1=(LEFT) y1=(10 + plot_h) x2=(WIDTH - 10) y2=(10 + plot_h) {}
            text x=(LEFT + 6) y=(22) { "max " (dollars(top)) }
            text x=(LEFT - 6) y=(10 + plot_h) text-anchor="end" { "$0" }
            @for (i, (day, nanos)) in days.iter().enumerate() {
                @let h = (u128::from(*nanos) * u128::from(plot_h) / u128::from(max)) as u64;
                @let x = LEFT + 1 + i as u64 * slot;
                rect.bar x=(x) y=(10 + plot_h - h) width=(bar_w) height=(h.max(u64::from(*nanos > 0))) {
                    title { (date(*day)) ": " (dollars(*nanos)) }
                }
            }
            @if let (Some(first), Some(last)) = (days.first(), days.last()) {
                text x=(LEFT) y=(HEIGHT - 6) { (date(first.0)) }
                text x=(WIDTH - 10) y=(HEIGHT - 6) text-anchor="end" { (date(last.0)) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_day() {
        let svg = spend_per_day(&[(20_000, 0), (20_001, 500), (20_002, 1_000)]).into_string();
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("height=\"148\""), "{svg}");
        assert!(svg.contains("height=\"74\""), "{svg}");
        assert!(svg.contains("height=\"0\""), "{svg}");
        assert!(
            svg.contains("<title>2024-10-05: $0.0000005</title>"),
            "{svg}"
        );
        assert!(!svg.contains("style="));
        assert!(spend_per_day(&[]).into_string().contains("<svg"));
    }
}
