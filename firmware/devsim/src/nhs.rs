//! NHS numbers in the 999 range, which NHS England never issues to people
//! and reserves for testing. Ten digits, the last a modulus-11 check digit.

use crate::rng::SimRng;

/// The check digit for nine digits, or `None` when the remainder makes the
/// number invalid (check value 10).
pub fn check_digit(nine: &[u32; 9]) -> Option<u32> {
    let sum: u32 = nine.iter().zip((2..=10).rev()).map(|(d, w)| d * w).sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        c => Some(c),
    }
}

/// Whether `s` is ten digits with a valid check digit.
pub fn is_valid(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != 10 || s.len() != 10 {
        return false;
    }
    let mut nine = [0u32; 9];
    nine.copy_from_slice(&digits[..9]);
    check_digit(&nine) == Some(digits[9])
}

/// The test-range number `999` + `body` (six digits) + its check digit,
/// or `None` when those nine digits have none.
fn test_number(body: u32) -> Option<String> {
    let mut nine = [9u32, 9, 9, 0, 0, 0, 0, 0, 0];
    for (i, d) in nine.iter_mut().skip(3).enumerate() {
        *d = body / 10u32.pow(5 - i as u32) % 10;
    }
    check_digit(&nine).map(|c| {
        nine.iter()
            .chain(std::iter::once(&c))
            .map(|d| char::from(b'0' + *d as u8))
            .collect()
    })
}

/// A random valid NHS number starting 999.
pub fn random_test_number(rng: &mut SimRng) -> String {
    loop {
        let body = (0..6).fold(0u32, |b, _| b * 10 + (rng.next_u64() % 10) as u32);
        if let Some(n) = test_number(body) {
            return n;
        }
    }
}

/// The next valid test-range number after `n` (wrapping within the 999
/// range).
pub fn next_test_number(n: &str) -> String {
    let body: u32 = n.get(3..9).and_then(|b| b.parse().ok()).unwrap_or(0);
    (1..=1_000_000u32)
        .find_map(|k| test_number((body + k) % 1_000_000))
        .unwrap_or_else(|| n.to_string())
}

/// `n` random valid test-range numbers, no two the same.
pub fn distinct_test_numbers(rng: &mut SimRng, n: usize) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let x = random_test_number(rng);
        if seen.insert(x.clone()) {
            out.push(x);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_numbers_are_valid_and_in_the_test_range() {
        let mut rng = SimRng::seeded(7);
        for _ in 0..500 {
            let n = random_test_number(&mut rng);
            assert!(n.starts_with("999") && is_valid(&n), "{n}");
        }
    }

    #[test]
    fn distinct_and_next_numbers_are_valid_test_numbers() {
        let mut rng = SimRng::seeded(7);
        let all = distinct_test_numbers(&mut rng, 25_000);
        let set: std::collections::HashSet<&String> = all.iter().collect();
        assert_eq!(set.len(), 25_000);
        for n in all.iter().take(500) {
            let next = next_test_number(n);
            assert!(next.starts_with("999") && is_valid(&next), "{n} → {next}");
            assert_ne!(&next, n);
        }
        assert_eq!(next_test_number("9990000018"), "9990000026");
    }

    #[test]
    fn known_numbers_check() {
        assert!(is_valid("9434765919"));
        assert!(!is_valid("9434765918"));
        assert!(!is_valid("943476591"));
    }
}
