//! Time, injectable: the service asks a [`Clock`]; tests use [`ManualClock`] and move it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since the Unix epoch.
pub type Ms = i64;

pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> Ms;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Ms {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock tests move by hand.
#[derive(Debug, Default, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(ms: Ms) -> Self {
        ManualClock(Arc::new(AtomicI64::new(ms)))
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    pub fn set(&self, ms: Ms) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Ms {
        self.0.load(Ordering::SeqCst)
    }
}

/// `Asia/Tokyo`, `UTC`, `+09:00`, `-05:30` → offset in seconds. Japan has no daylight
/// saving time, so a fixed offset is exact for the default zone.
pub fn parse_tz(s: &str) -> Result<i64, String> {
    match s {
        "Asia/Tokyo" | "JST" | "Japan" => return Ok(9 * 3600),
        "UTC" | "Etc/UTC" | "GMT" => return Ok(0),
        "Asia/Seoul" => return Ok(9 * 3600),
        "Asia/Shanghai" | "Asia/Taipei" | "Asia/Singapore" | "Asia/Hong_Kong" => {
            return Ok(8 * 3600);
        }
        _ => {}
    }
    let sign = match s.as_bytes().first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => {
            return Err(format!(
                "unknown time zone `{s}` (use Asia/Tokyo, UTC or a fixed offset like +09:00)"
            ));
        }
    };
    let (h, m) = parse_hhmm(&s[1..])?;
    Ok(sign * (h as i64 * 3600 + m as i64 * 60))
}

/// `HH:MM` → (hours, minutes).
pub fn parse_hhmm(s: &str) -> Result<(u32, u32), String> {
    let (h, m) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not HH:MM"))?;
    let h: u32 = h.parse().map_err(|_| format!("`{s}` is not HH:MM"))?;
    let m: u32 = m.parse().map_err(|_| format!("`{s}` is not HH:MM"))?;
    if h > 23 || m > 59 {
        return Err(format!("`{s}` is not a time of day"));
    }
    Ok((h, m))
}

/// Civil date of a day number (days since 1970-01-01).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Day number of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-22 09:00` in the given offset.
pub fn format_local(ms: Ms, offset_secs: i64) -> String {
    let secs = ms.div_euclid(1000) + offset_secs;
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn zones_and_dates() {
        assert_eq!(parse_tz("Asia/Tokyo").unwrap(), 32_400);
        assert_eq!(parse_tz("-05:30").unwrap(), -19_800);
        assert!(parse_tz("Mars/Olympus").is_err());
        assert_eq!(format_local(0, 9 * 3600), "1970-01-01 09:00:00");
        for days in [-1000i64, 0, 59, 60, 11_000, 20_500] {
            let (y, m, d) = civil(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        let c = ManualClock::new(5);
        c.advance(10);
        assert_eq!(c.now_ms(), 15);
    }
}
