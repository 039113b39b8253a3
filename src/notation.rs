//! How the draw page prints a nudge, a slope or a change: three significant digits in
//! one notation per number, so that `+0.0000421` and `-3.62e-8` never sit side by side.
//! The page's script (`fmt` and `num` in `draw.html`) follows the same rule; the
//! browser test checks that the two agree.

/// `v` to three significant digits: fixed-point when it rounds to between 0.01 and
/// 999 in magnitude (`0.917`, `0.0421`, `12.3`), otherwise with an exponent (`4.21e-5`,
/// `-3.62e-8`, `1.23e3`); `0` for zero.
pub fn three_digits(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if !v.is_finite() {
        return format!("{v}");
    }
    // The exponent of the rounded value picks the notation, so 0.009996 prints as
    // 0.0100, not 1.00e-2.
    let scientific = format!("{v:.2e}");
    let exponent = scientific
        .rsplit_once('e')
        .and_then(|(_, e)| e.parse::<i32>().ok())
        .unwrap_or(0);
    if (-2..=2).contains(&exponent) {
        format!("{v:.*}", (2 - exponent) as usize)
    } else {
        scientific
    }
}

/// [`three_digits`] with a `+` in front of a positive value: a nudge or a change.
pub fn signed_three_digits(v: f64) -> String {
    if v > 0.0 {
        format!("+{}", three_digits(v))
    } else {
        three_digits(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_get_an_exponent_and_the_rest_three_significant_digits() {
        let cases = [
            (0.0, "0"),
            (-0.0, "0"),
            (0.917_3, "+0.917"),
            (-0.917_3, "-0.917"),
            (0.042_14, "+0.0421"),
            (0.01, "+0.0100"),
            (0.009_996, "+0.0100"),
            (0.009_94, "+9.94e-3"),
            (4.21e-5, "+4.21e-5"),
            (0.000_042_1, "+4.21e-5"),
            (-3.62e-8, "-3.62e-8"),
            (2.1e-5, "+2.10e-5"),
            (1.0, "+1.00"),
            (12.34, "+12.3"),
            (999.4, "+999"),
            (999.6, "+1.00e3"),
            (-1234.0, "-1.23e3"),
        ];
        for (v, want) in cases {
            assert_eq!(signed_three_digits(v), want, "{v:e}");
        }
        assert_eq!(three_digits(2.39e-3), "2.39e-3");
        assert_eq!(three_digits(0.25), "0.250");
    }
}
