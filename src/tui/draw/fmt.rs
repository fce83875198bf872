//! Text forms of the record's numbers (display only: nothing here is a metric).

/// PCC with 7 decimals, `-` when the check has none.
pub fn pcc(p: Option<f64>) -> String {
    match p {
        Some(p) if p.is_finite() => format!("{p:.7}"),
        Some(p) => format!("{p}"),
        None => "-".into(),
    }
}

/// A magnitude in 3–4 significant digits, scientific outside [0.1, 1e4).
pub fn num(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else if (0.1..1e4).contains(&x.abs()) {
        let digits = 3usize.saturating_sub(x.abs().log10().floor().max(0.0) as usize);
        format!("{x:.digits$}")
    } else {
        format!("{x:.2e}")
    }
}

/// A ULP distance: whole numbers up to a million, then scientific.
pub fn ulp(x: f64) -> String {
    if x.is_finite() && x.abs() < 1e6 {
        format!("{x:.0}")
    } else {
        num(x)
    }
}

/// An op time given in µs.
pub fn micros(us: f64) -> String {
    if !us.is_finite() || us < 0.0 {
        "-".into()
    } else if us < 1_000.0 {
        format!("{us:.0}µs")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1e3)
    } else {
        format!("{:.2}s", us / 1e6)
    }
}

/// A duration given in seconds.
pub fn secs(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        "-".into()
    } else if s < 60.0 {
        format!("{s:.2}s")
    } else {
        let m = (s / 60.0).floor();
        format!("{m:.0}m{:02.0}s", (s - 60.0 * m).floor())
    }
}

/// `1×58×64`; `scalar` for rank 0.
pub fn shape(s: &[usize]) -> String {
    if s.is_empty() {
        return "scalar".into();
    }
    s.iter().map(usize::to_string).collect::<Vec<_>>().join("×")
}

/// Shape, and the padded shape after an arrow when it differs.
pub fn shape_padded(s: &[usize], padded: &[usize]) -> String {
    if padded.is_empty() || padded == s {
        shape(s)
    } else {
        format!("{}→{}", shape(s), shape(padded))
    }
}

/// Row-major coordinates of a flat index, `[i, j, k]` (empty when out of range).
pub fn coords(flat: usize, shape: &[usize]) -> String {
    let total: usize = shape.iter().product();
    if shape.is_empty() || flat >= total {
        return String::new();
    }
    let mut rest = flat;
    let mut out = vec![0usize; shape.len()];
    for (d, &n) in shape.iter().enumerate().rev() {
        if n > 0 {
            out[d] = rest % n;
            rest /= n;
        }
    }
    format!(
        "[{}]",
        out.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// Cuts `s` to `width` characters, ending in `…` when cut.
pub fn fit(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(pcc(Some(0.99999999)), "1.0000000");
        assert_eq!(pcc(Some(0.9876543)), "0.9876543");
        assert_eq!(pcc(None), "-");
        assert_eq!(num(4.76837158203125e-07), "4.77e-7");
        assert_eq!(num(0.5), "0.500");
        assert_eq!(num(12.5), "12.50");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(f64::INFINITY), "inf");
        assert_eq!(ulp(2048.0), "2048");
        assert_eq!(ulp(3.0e9), "3.00e9");
        assert_eq!(micros(3.0), "3µs");
        assert_eq!(micros(1234.0), "1.23ms");
        assert_eq!(secs(1.004), "1.00s");
        assert_eq!(secs(125.0), "2m05s");
    }

    #[test]
    fn shapes() {
        assert_eq!(shape(&[1, 58, 64]), "1×58×64");
        assert_eq!(shape(&[]), "scalar");
        assert_eq!(shape_padded(&[1, 58, 64], &[1, 64, 64]), "1×58×64→1×64×64");
        assert_eq!(shape_padded(&[2, 3], &[2, 3]), "2×3");
        assert_eq!(coords(5, &[2, 3]), "[1,2]");
        assert_eq!(coords(6, &[2, 3]), "");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
    }
}
