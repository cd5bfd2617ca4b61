//! Reading Prometheus text exposition: sum the samples of a metric whose
//! labels include the given pairs; check it with the real `promtool`.

use std::time::Duration;

/// Runs `promtool check metrics` on `text`; its complaints when it rejects it.
pub async fn promtool_check(text: &str) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let promtool = crate::tool("promtool", &["/usr/bin/promtool"]);
    let mut child = tokio::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = crate::within(
        Duration::from_secs(30),
        "promtool",
        child.wait_with_output(),
    )
    .await
    .unwrap();
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Parse `name{labels} value` lines and sum the values of samples named
/// `name` whose labels contain every `(key, value)` in `labels`. A metric
/// with no matching sample sums to 0.
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((metric, labelset, value)) = split_sample(line) else {
            continue;
        };
        if metric != name {
            continue;
        }
        let pairs = parse_labels(labelset);
        let all = labels
            .iter()
            .all(|(k, v)| pairs.iter().any(|(pk, pv)| pk == k && pv == v));
        if all {
            total += value;
        }
    }
    total
}

/// Whether any sample (or TYPE/HELP line) of metric family `name` exists.
pub fn has_family(text: &str, name: &str) -> bool {
    text.lines().any(|l| {
        l.strip_prefix("# TYPE ")
            .is_some_and(|r| r.split_whitespace().next() == Some(name))
            || split_sample(l).is_some_and(|(m, _, _)| m == name)
    })
}

fn split_sample(line: &str) -> Option<(&str, &str, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (metric, rest) = match line.find('{') {
        Some(i) => {
            let end = line.rfind('}')?;
            (&line[..i], (&line[i + 1..end], line[end + 1..].trim()))
        }
        None => {
            let mut it = line.splitn(2, ' ');
            (it.next()?, ("", it.next()?.trim()))
        }
    };
    let (labels, tail) = rest;
    let value = tail.split_whitespace().next()?.parse().ok()?;
    Some((metric, labels, value))
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let key = key.trim().trim_start_matches(',').trim().to_string();
        if key.is_empty() || chars.next() != Some('"') {
            break;
        }
        let mut val = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        val.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => break,
                c => val.push(c),
            }
        }
        out.push((key, val));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_matching_samples() {
        let text = "# TYPE x_total counter\n\
                    x_total{a=\"1\",b=\"q\\\"z\"} 2\n\
                    x_total{a=\"1\",b=\"y\"} 3\n\
                    x_total{a=\"2\",b=\"y\"} 5\n\
                    y 7\n";
        assert_eq!(sum(text, "x_total", &[("a", "1")]), 5.0);
        assert_eq!(sum(text, "x_total", &[("b", "q\"z")]), 2.0);
        assert_eq!(sum(text, "x_total", &[("a", "3")]), 0.0);
        assert_eq!(sum(text, "y", &[]), 7.0);
        assert!(has_family(text, "x_total"));
        assert!(!has_family(text, "z"));
    }
}
