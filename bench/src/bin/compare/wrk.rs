//! The load generator: `wrk` (one thread, pinned to the load CPUs), and its output.

use std::time::Duration;

use anyhow::Context;

/// What one `wrk --latency` run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkReport {
    pub requests: u64,
    pub requests_per_s: f64,
    pub p50: Duration,
    pub p75: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Responses other than 2xx and 3xx.
    pub non_2xx: u64,
    /// Connect, read, write and timeout errors together.
    pub socket_errors: u64,
}

/// How `wrk` is run: the same for every system.
#[derive(Debug, Clone)]
pub struct Load {
    pub connections: u32,
    pub cpus: Option<String>,
    /// wrk's per-request timeout (its default is 2 s).
    pub timeout: Duration,
}

impl Load {
    /// Load `url` for `duration`, with a wrk Lua script (`-s`) if given: e.g.
    /// [`VARY_QUERY`].
    pub async fn run(
        &self,
        url: &str,
        duration: Duration,
        script: Option<&std::path::Path>,
    ) -> anyhow::Result<WrkReport> {
        let mut cmd = match &self.cpus {
            Some(cpus) => {
                let mut c = tokio::process::Command::new("taskset");
                c.args(["-c", cpus, "wrk"]);
                c
            }
            None => tokio::process::Command::new("wrk"),
        };
        cmd.args([
            "-t1".to_string(),
            format!("-c{}", self.connections),
            format!("-d{}s", duration.as_secs().max(1)),
            "--timeout".to_string(),
            format!("{}s", self.timeout.as_secs().max(1)),
            "--latency".to_string(),
        ]);
        if let Some(script) = script {
            cmd.arg("-s").arg(script);
        }
        cmd.arg(url).kill_on_drop(true);
        let out = cmd
            .output()
            .await
            .context("running wrk (apt-get install wrk)")?;
        let text = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(
            out.status.success(),
            "wrk failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
        parse(&text).with_context(|| format!("reading wrk's output:\n{text}"))
    }
}

/// A wrk script that gives every request its own query (`?v=1`, `?v=2`, …) on the
/// URL's path: a page whose components' inputs (the request context) change on every
/// request, so no render is ever reused.
pub const VARY_QUERY: &str = r#"local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, wrk.path .. "?v=" .. n)
end
"#;

/// Parse `wrk --latency` output.
pub fn parse(text: &str) -> anyhow::Result<WrkReport> {
    let mut percentiles = [None; 4];
    let mut requests = None;
    let mut requests_per_s = None;
    let mut max = None;
    let mut non_2xx = 0;
    let mut socket_errors = 0;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Latency", _avg, _stdev, m, ..] => max = duration(m),
            [p @ ("50%" | "75%" | "90%" | "99%"), value] => {
                let i = ["50%", "75%", "90%", "99%"]
                    .iter()
                    .position(|x| x == p)
                    .unwrap_or(0);
                percentiles[i] = duration(value);
            }
            [n, "requests", "in", ..] => requests = n.parse().ok(),
            ["Requests/sec:", n] => requests_per_s = n.parse().ok(),
            ["Non-2xx", "or", "3xx", "responses:", n] => non_2xx = n.parse().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                socket_errors = rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    let [Some(p50), Some(p75), Some(p90), Some(p99)] = percentiles else {
        anyhow::bail!("no latency distribution (was --latency given?)");
    };
    Ok(WrkReport {
        requests: requests.context("no request count")?,
        requests_per_s: requests_per_s.context("no Requests/sec")?,
        p50,
        p75,
        p90,
        p99,
        max: max.context("no latency line")?,
        non_2xx,
        socket_errors,
    })
}

/// `812.00us`, `1.23ms`, `2.50s`, `1.00m` (wrk's units).
fn duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let seconds = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "Running 15s test @ http://127.0.0.1:40111/bench
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     7.61ms    2.05ms   1.02s    91.21%
    Req/Sec     6.60k   312.29     7.10k    80.00%
  Latency Distribution
     50%  812.00us
     75%    8.20ms
     90%    9.91ms
     99%   14.06ms
  98612 requests in 15.00s, 1.02GB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:   6574.12
Transfer/sec:     69.52MB
";

    #[test]
    fn parses_wrk_latency_output() {
        let r = parse(OUTPUT).expect("parses");
        assert_eq!(r.requests, 98612);
        assert!((r.requests_per_s - 6574.12).abs() < 1e-9);
        assert_eq!(r.p50, Duration::from_micros(812));
        assert_eq!(r.p75, Duration::from_micros(8200));
        assert_eq!(r.p99, Duration::from_micros(14060));
        assert_eq!(r.max, Duration::from_millis(1020));
        assert_eq!(r.non_2xx, 7);
        assert_eq!(r.socket_errors, 5);
    }

    #[test]
    fn output_without_the_distribution_is_an_error() {
        let text = OUTPUT.replace("99%", "98%");
        assert!(parse(&text).is_err());
    }

    #[test]
    fn units() {
        assert_eq!(duration("1.50s"), Some(Duration::from_millis(1500)));
        assert_eq!(duration("2.00m"), Some(Duration::from_secs(120)));
        assert_eq!(duration("12"), None);
    }
}
