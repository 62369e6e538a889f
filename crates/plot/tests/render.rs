//! Every panel kind renders to a real PNG of the requested size, atomically.

use tensim_plot::{
    render_figure, render_panel, ColourScale, Heatmap, ImagePanel, LinePlot, Panel, Series,
};

fn png_size(path: &std::path::Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    let be = |k: usize| u32::from_be_bytes(bytes[k..k + 4].try_into().unwrap());
    (be(16), be(20))
}

fn panels() -> Vec<Panel> {
    let n = 12;
    let values: Vec<f64> = (0..n * n)
        .map(|k| {
            if k / n == k % n {
                1.0
            } else {
                ((k * 37) % 100) as f64 / 100.0 - 0.2
            }
        })
        .collect();
    let frequencies: Vec<f64> = (0..45)
        .map(|k| k as f64 / 45.0)
        .chain(std::iter::once(f64::NAN))
        .take(45)
        .collect();
    vec![
        Panel::Heatmap(Heatmap {
            title: "tensor  Δ=0.24".into(),
            rows: n,
            cols: n,
            scale: ColourScale::fit([&values[..]]),
            values,
            colour_label: "similarity".into(),
            x_label: "checkpoint".into(),
            y_label: "checkpoint".into(),
            boundaries: vec![8],
            block_labels: vec![(0, "A".into()), (8, "B".into())],
            x_ticks: vec![],
            y_ticks: vec![],
        }),
        Panel::Heatmap(Heatmap {
            title: "frequencies".into(),
            rows: 5,
            cols: 9,
            scale: ColourScale::fit([&frequencies[..]]),
            values: frequencies,
            colour_label: "share".into(),
            x_label: "checkpoint".into(),
            y_label: "frequency".into(),
            boundaries: vec![],
            block_labels: vec![],
            x_ticks: vec![(0, "0".into()), (8, "1e5".into())],
            y_ticks: vec![],
        }),
        Panel::Lines(LinePlot {
            title: "accuracy".into(),
            x_label: "step".into(),
            y_label: "accuracy".into(),
            series: vec![Series {
                name: "train".into(),
                points: (0..50)
                    .map(|s| (s as f64 * 10.0, 1.0 - 1.0 / (1.0 + s as f64)))
                    .collect(),
                colour: None,
            }],
            log_x: true,
            y_range: Some((0.0, 1.0)),
            vlines: vec![(250.0, "phase B".into())],
            x_ticks: vec![],
            x_range: None,
        }),
        Panel::Image(ImagePanel {
            title: "sample → predicted 7".into(),
            height: 28,
            width: 28,
            pixels: (0..784).map(|k| (k % 28) as f32 / 27.0).collect(),
        }),
    ]
}

#[test]
fn panels_and_figures_are_pngs_of_the_requested_size() {
    let dir = tempfile::tempdir().unwrap();
    for (k, panel) in panels().iter().enumerate() {
        let path = dir.path().join(format!("p{k}.png"));
        render_panel(panel, &path, (400, 300)).unwrap();
        assert_eq!(png_size(&path), (400, 300));
    }
    let fig = dir.path().join("figure.png");
    render_figure(&panels(), 2, 4, (300, 250), &fig).unwrap();
    assert_eq!(png_size(&fig), (1200, 500));
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.contains("tmp")),
        "no temporary files left: {names:?}"
    );
    let err = render_figure(&panels(), 1, 2, (300, 250), &fig)
        .unwrap_err()
        .to_string();
    assert!(err.contains("do not fit"), "{err}");
    let err = render_panel(&panels()[0], &dir.path().join("missing/x.png"), (100, 100))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing"), "{err}");
}
