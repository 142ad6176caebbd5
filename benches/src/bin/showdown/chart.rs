//! `--svg`: per scenario, each runtime's median time relative to asyncio-rs's,
//! as horizontal bars from 1 on a logarithmic axis (left of 1: faster than
//! asyncio-rs, right: slower), with each bar labelled in words.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::scenarios::{FLOOR_LEGEND, Runtime};

/// One scenario of the chart: its label and `(runtime, ratio)` bars.
pub(crate) type Group = (String, Vec<(Runtime, f64)>);

fn colour(rt: Runtime) -> RGBColor {
    match rt {
        Runtime::AsyncioRs => RGBColor(0x2b, 0x6c, 0xb0),
        Runtime::TokioCurrentThread => RGBColor(0xd9, 0x5f, 0x02),
        Runtime::TokioLocalSet => RGBColor(0xe6, 0xab, 0x02),
        Runtime::TokioJoinSet => RGBColor(0xa6, 0x76, 0x1d),
        Runtime::TokioMultiThread => RGBColor(0xe7, 0x29, 0x8a),
        Runtime::AsyncExecutor => RGBColor(0x66, 0xa6, 0x1e),
        Runtime::Floor => RGBColor(0x88, 0x88, 0x88),
        Runtime::Cpython => RGBColor(0x75, 0x70, 0xb3),
        Runtime::CpythonUvloop => RGBColor(0x1b, 0x9e, 0x77),
    }
}

/// Writes the chart to `path`.
pub(crate) fn write_svg(
    path: &std::path::Path,
    title: &str,
    subtitle: &str,
    groups: &[Group],
) -> Result<(), String> {
    // Rows from the top: a heading row per scenario, then its bars.
    let mut rows: Vec<(String, Option<(Runtime, f64)>)> = Vec::new();
    for (label, bars) in groups {
        rows.push((label.clone(), None));
        for &(rt, ratio) in bars {
            rows.push((rt.name().to_owned(), Some((rt, ratio))));
        }
    }
    let ratios = rows.iter().filter_map(|r| r.1.map(|(_, x)| x));
    let (lo, hi) = ratios.fold((1.0f64, 1.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    // Whole decades around the data, so the axis reads 0.1, 1, 10, 100.
    let lo = 10f64.powf((lo.log10() - 0.15).floor());
    let hi = 10f64.powf((hi.log10() + 0.15).ceil());
    let height = 230 + 20 * rows.len() as u32;
    let root = SVGBackend::new(path, (1100, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (top, rest) = root.split_vertically(60);
    top.draw(&Text::new(title, (20, 10), ("sans-serif", 20).into_font()))
        .map_err(|e| e.to_string())?;
    top.draw(&Text::new(
        subtitle,
        (20, 36),
        ("sans-serif", 13).into_font(),
    ))
    .map_err(|e| e.to_string())?;
    let n = rows.len() as f64;
    let mut chart = ChartBuilder::on(&rest)
        .margin_right(110)
        .margin_bottom(40)
        .x_label_area_size(60)
        .y_label_area_size(250)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..n)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc(
            "median time relative to asyncio-rs (log scale): left of 1 = faster than asyncio-rs, \
             right of 1 = slower; lower is better",
        )
        .x_label_formatter(&|x| format!("{x}x"))
        .draw()
        .map_err(|e| e.to_string())?;
    // The reference line at 1.
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(1.0, 0.0), (1.0, n)],
            BLACK.stroke_width(1),
        )))
        .map_err(|e| e.to_string())?;
    let label_style = |size: u32, right: bool| {
        let pos = if right {
            Pos::new(HPos::Right, VPos::Center)
        } else {
            Pos::new(HPos::Left, VPos::Center)
        };
        ("sans-serif", size)
            .into_font()
            .into_text_style(&root)
            .pos(pos)
    };
    for (i, (label, bar)) in rows.iter().enumerate() {
        // Row i from the top is the band [n - i - 1, n - i].
        let y = n - i as f64 - 0.5;
        let (px, py) = chart.backend_coord(&(lo, y));
        match bar {
            None => {
                root.draw(&Text::new(label.clone(), (8, py), label_style(14, false)))
                    .map_err(|e| e.to_string())?;
            }
            Some((rt, ratio)) => {
                root.draw(&Text::new(
                    label.clone(),
                    (px - 8, py),
                    label_style(12, true),
                ))
                .map_err(|e| e.to_string())?;
                let c = colour(*rt);
                let (a, b) = if *ratio >= 1.0 {
                    (1.0, *ratio)
                } else {
                    (*ratio, 1.0)
                };
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(a, y - 0.38), (b.max(a * 1.004), y + 0.38)],
                        c.filled(),
                    )))
                    .map_err(|e| e.to_string())?;
                let words = if *rt == Runtime::AsyncioRs {
                    "1 (reference)".to_owned()
                } else if *ratio >= 1.0 {
                    format!("{ratio:.2}x slower")
                } else {
                    format!("{:.2}x faster", 1.0 / ratio)
                };
                let (tx, ty) = chart.backend_coord(&(b, y));
                root.draw(&Text::new(words, (tx + 4, ty), label_style(11, false)))
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    let (_, bottom) = chart.backend_coord(&(lo, 0.0));
    root.draw(&Text::new(
        FLOOR_LEGEND,
        (20, bottom + 80),
        ("sans-serif", 12).into_font(),
    ))
    .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
