//! Qualys severity (1 lowest to 5 highest) on each format's scale.
//!
//! NOTE: 5 is taken as the most severe level because Qualys' scale for its
//! other modules ends at level 5 "urgent" and the FIM API guide's event
//! schema lists 1 to 5. No FIM documentation page found states it outright.

use fim_model::Severity;

/// CEF severity 0–10: the Qualys level times two (2, 4, 6, 8, 10).
pub fn cef(severity: Severity) -> u8 {
    severity.level() * 2
}

/// Syslog severity code (RFC 5424 section 6.2.1): 1 → 6 Informational,
/// 2 → 5 Notice, 3 → 4 Warning, 4 → 3 Error, 5 → 2 Critical. Records without
/// a severity (incidents) are 5 Notice.
pub fn syslog(severity: Option<Severity>) -> u8 {
    match severity {
        Some(severity) => 7 - severity.level(),
        None => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cef_scales_by_two() {
        let levels: Vec<u8> = (1..=5).filter_map(Severity::new).map(cef).collect();
        assert_eq!(levels, [2, 4, 6, 8, 10]);
    }

    #[test]
    fn syslog_maps_highest_to_critical() {
        let levels: Vec<u8> = (1..=5).map(|l| syslog(Severity::new(l))).collect();
        assert_eq!(levels, [6, 5, 4, 3, 2]);
    }
}
