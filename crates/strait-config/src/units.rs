//! Duration (`1m30s`) and size (`64KiB`) strings: parsing with user-facing errors, and printing.

use std::time::Duration;

#[cfg(test)]
mod tests;

const DURATION_UNITS: &[(&str, u64)] = &[("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)];
const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
];

/// Parses `"<n><unit>"` sequences such as `15s`, `250ms` or `1m30s` (units ms, s, m, h).
///
/// A bare number is rejected on purpose: `timeout: 15` is ambiguous between seconds and
/// milliseconds, and guessing wrong by a factor of 1000 is worse than asking.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration: write e.g. `15s` (units: ms, s, m, h)".into());
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "duration `{t}` has no unit: write e.g. `{t}s` or `{t}ms` (units: ms, s, m, h)"
        ));
    }
    let mut millis: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "invalid duration `{t}`: expected a whole number before `{rest}` \
                 (write e.g. `1m30s`, not `1.5m`)"
            ));
        }
        let (num, tail) = rest.split_at(digits);
        let unit_len = tail.bytes().take_while(|b| !b.is_ascii_digit()).count();
        let (unit, next) = tail.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!(
                "invalid duration `{t}`: `{num}` at the end has no unit (units: ms, s, m, h)"
            ));
        }
        let Some(&(_, scale)) = DURATION_UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(format!(
                "invalid duration `{t}`: unknown unit `{unit}` (expected ms, s, m or h)"
            ));
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("duration `{t}` is too large"))?;
        millis = n
            .checked_mul(scale)
            .and_then(|v| millis.checked_add(v))
            .ok_or_else(|| format!("duration `{t}` is too large"))?;
        rest = next;
    }
    Ok(Duration::from_millis(millis))
}

/// Prints a duration in the config syntax, largest units first (`90s` → `1m30s`, `0s` for zero).
///
/// Sub-millisecond parts are dropped: the config cannot express them.
pub fn duration_to_string(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, scale) in DURATION_UNITS.iter().rev() {
        let scale = u128::from(*scale);
        if ms >= scale {
            out.push_str(&format!("{}{unit}", ms / scale));
            ms %= scale;
        }
    }
    out
}

/// Parses a byte size: a plain integer (bytes) or `<n>B`, `<n>KiB`, `<n>MiB`, `<n>GiB`.
///
/// Decimal spellings (`KB`, `M`, `G`, ...) are refused with a hint rather than guessed: `1G`
/// means 10^9 to some readers and 2^30 to others, and a limit off by 7% is a silent surprise.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!(
            "invalid size `{t}`: expected a number of bytes or e.g. `64KiB` (units: B, KiB, MiB, GiB)"
        ));
    }
    let (num, unit) = t.split_at(digits);
    let unit = unit.trim_start();
    let scale = if unit.is_empty() {
        1
    } else if let Some(&(_, s)) = SIZE_UNITS.iter().find(|(u, _)| *u == unit) {
        s
    } else {
        let hint = match unit.to_ascii_lowercase().as_str() {
            "k" | "kb" => " (did you mean `KiB`?)",
            "m" | "mb" => " (did you mean `MiB`?)",
            "g" | "gb" => " (did you mean `GiB`?)",
            _ => "",
        };
        return Err(format!(
            "invalid size `{t}`: unknown unit `{unit}`{hint}; expected B, KiB, MiB or GiB"
        ));
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("size `{t}` is too large"))
}
