//! NHS numbers for the demo and for tests.

/// The `i`-th valid NHS number in the 999 range, which is never issued to
/// real people (NHS England reserves it for testing): ten digits, the last
/// the modulus-11 check digit of the first nine. Distinct for distinct `i`
/// below 100,000.
pub fn test_range(i: u32) -> String {
    (0..10)
        .map(|k| format!("999{:06}", i * 10 + k))
        .find_map(|nine| {
            let sum: u32 = nine
                .chars()
                .zip((2..=10).rev())
                .map(|(c, w)| c.to_digit(10).unwrap_or(0) * w)
                .sum();
            match 11 - sum % 11 {
                10 => None,
                11 => Some(format!("{nine}0")),
                c => Some(format!("{nine}{c}")),
            }
        })
        .unwrap_or_else(|| "9990000018".into())
}

/// A test-range NHS number for a name (the same for the same name), for
/// fixtures that admit patients by name: distinct names get distinct
/// numbers but for a one-in-100,000 clash.
pub fn test_range_for(name: &str) -> String {
    // FNV-1a: stable across runs and platforms, unlike the std hasher.
    let h = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    test_range(h % 100_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_range_numbers_are_distinct_and_carry_their_check_digit() {
        let all: std::collections::BTreeSet<String> = (0..2_000).map(test_range).collect();
        assert_eq!(all.len(), 2_000);
        for n in &all {
            let d: Vec<u32> = n.chars().filter_map(|c| c.to_digit(10)).collect();
            let sum: u32 = d[..9].iter().zip((2..=10).rev()).map(|(d, w)| d * w).sum();
            assert_eq!((11 - sum % 11) % 11, d[9], "{n}");
            assert!(n.starts_with("999") && n.len() == 10, "{n}");
        }
    }
}
