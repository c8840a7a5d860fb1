//! WFDB (PhysioNet) record reading as pure functions over text and bytes.
//!
//! Only what the detector, its evaluation and the simulator's replay need:
//! the header (`.hea`), signal formats 212 and 16 (`.dat`), and MIT-format
//! annotations (`.atr`). The caller reads the files; nothing here touches
//! the file system, so the parsers are fuzzable and testable on literals.
//! Format reference: the WFDB Programmer's Guide, `header(5)`,
//! `signal(5)` and `annot(5)`.

use crate::error::EcgError;

/// One signal line of a header.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalSpec {
    /// Signal file name as written in the header (e.g. `100.dat`).
    pub file: String,
    /// Storage format: 212 or 16 are decodable here.
    pub format: u16,
    /// ADC units per physical unit (e.g. 200 per mV); WFDB's default 200 when absent or 0.
    pub gain: f64,
    /// ADC value corresponding to 0 physical units.
    pub baseline: i32,
    /// Physical unit, `mV` unless stated.
    pub units: String,
    /// Description, e.g. `MLII`.
    pub description: String,
}

impl SignalSpec {
    /// Microvolts per ADC count, assuming the gain is per millivolt (or per
    /// volt when the unit says so). This is what an ECG chunk carries.
    pub fn microvolts_per_count(&self) -> f32 {
        let per_unit = match self.units.as_str() {
            "uV" => 1.0,
            "V" => 1_000_000.0,
            _ => 1000.0,
        };
        (per_unit / self.gain) as f32
    }
}

/// A parsed record header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub record: String,
    /// Sampling frequency, Hz (per signal; multi-frequency records are not supported).
    pub fs_hz: f64,
    /// Samples per signal, when the header says.
    pub n_samples: Option<u64>,
    pub signals: Vec<SignalSpec>,
}

/// Parse a `.hea` header.
pub fn parse_header(text: &str) -> Result<Header, EcgError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let (ln, record_line) = lines.next().ok_or(EcgError::Header {
        line: 1,
        reason: "empty header".into(),
    })?;
    let bad = |line: usize, reason: &str| EcgError::Header {
        line,
        reason: reason.to_string(),
    };
    let mut fields = record_line.split_whitespace();
    let record = fields.next().ok_or_else(|| bad(ln, "no record name"))?;
    if record.contains('/') {
        // "name/segments": a multi-segment record; its signals live elsewhere.
        return Err(bad(ln, "multi-segment records are not supported"));
    }
    let nsig: usize = fields
        .next()
        .ok_or_else(|| bad(ln, "no signal count"))?
        .parse()
        .map_err(|_| bad(ln, "signal count is not a number"))?;
    // The frequency field may be "360", "360/1" (counter frequency) or
    // "360:..."; only the leading number is the sampling frequency.
    let fs_hz = match fields.next() {
        None => 250.0, // WFDB default
        Some(f) => f
            .split(['/', '('])
            .next()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|v| *v > 0.0 && v.is_finite())
            .ok_or_else(|| bad(ln, "bad sampling frequency"))?,
    };
    let n_samples = match fields.next() {
        None => None,
        Some(n) => Some(
            n.parse::<u64>()
                .map_err(|_| bad(ln, "sample count is not a number"))?,
        ),
    };
    let mut signals = Vec::with_capacity(nsig.min(64));
    for _ in 0..nsig {
        let (ln, line) = lines
            .next()
            .ok_or_else(|| bad(ln, "fewer signal lines than the signal count"))?;
        signals.push(parse_signal_line(ln, line)?);
    }
    Ok(Header {
        record: record.to_string(),
        fs_hz,
        n_samples,
        signals,
    })
}

fn parse_signal_line(ln: usize, line: &str) -> Result<SignalSpec, EcgError> {
    let bad = |reason: &str| EcgError::Header {
        line: ln,
        reason: reason.to_string(),
    };
    let mut f = line.split_whitespace();
    let file = f.next().ok_or_else(|| bad("no file name"))?.to_string();
    let fmt_field = f.next().ok_or_else(|| bad("no format"))?;
    // "212", "212x2" (samples per frame), "212:3" (skew), "212+512" (byte offset)
    let fmt_digits: String = fmt_field
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let format: u16 = fmt_digits.parse().map_err(|_| bad("bad format"))?;
    if fmt_field.contains('x') {
        return Err(bad(
            "multi-frequency signals (NxM formats) are not supported",
        ));
    }
    if fmt_field.contains('+') {
        return Err(bad("byte offsets in signal files are not supported"));
    }
    // "200(0)/mV": gain, optional baseline, optional units
    let (mut gain, mut baseline, mut units) = (200.0, None, "mV".to_string());
    if let Some(g) = f.next() {
        let (num_part, unit_part) = match g.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (g, None),
        };
        let (gain_str, base_str) = match num_part.split_once('(') {
            Some((a, b)) => (a, Some(b.trim_end_matches(')'))),
            None => (num_part, None),
        };
        let parsed: f64 = gain_str.parse().map_err(|_| bad("bad gain"))?;
        if parsed > 0.0 && parsed.is_finite() {
            gain = parsed;
        }
        if let Some(b) = base_str {
            baseline = Some(b.parse::<i32>().map_err(|_| bad("bad baseline"))?);
        }
        if let Some(u) = unit_part {
            units = u.to_string();
        }
    }
    let _adc_res = f.next();
    let adc_zero: i32 = match f.next() {
        Some(z) => z.parse().map_err(|_| bad("bad ADC zero"))?,
        None => 0,
    };
    // initial value, checksum, block size: not needed to decode 212/16
    let _ = (f.next(), f.next(), f.next());
    let description = f.collect::<Vec<_>>().join(" ");
    Ok(SignalSpec {
        file,
        format,
        gain,
        baseline: baseline.unwrap_or(adc_zero),
        units,
        description,
    })
}

/// Decode one channel of a record's signal file into ADC counts.
///
/// All signals sharing the channel's file are assumed interleaved in frame
/// order, as WFDB writes them.
pub fn decode_channel(header: &Header, dat: &[u8], channel: usize) -> Result<Vec<i32>, EcgError> {
    let spec = header.signals.get(channel).ok_or(EcgError::NoSuchChannel {
        channel,
        available: header.signals.len(),
    })?;
    let group: Vec<&SignalSpec> = header
        .signals
        .iter()
        .filter(|s| s.file == spec.file)
        .collect();
    if group.iter().any(|s| s.format != spec.format) {
        return Err(EcgError::Header {
            line: channel + 2,
            reason: "signals in one file with different formats".into(),
        });
    }
    let pos = header.signals[..channel]
        .iter()
        .filter(|s| s.file == spec.file)
        .count();
    let all = match spec.format {
        212 => decode_212(dat),
        16 => decode_16(dat)?,
        other => return Err(EcgError::UnsupportedFormat(other)),
    };
    let nsig = group.len();
    let frames = all.len() / nsig;
    let frames = match header.n_samples {
        Some(n) if n > 0 => {
            if (frames as u64) < n {
                return Err(EcgError::TruncatedSignal(format!(
                    "{frames} frames, header says {n}"
                )));
            }
            n as usize
        }
        _ => frames,
    };
    Ok((0..frames).map(|i| all[i * nsig + pos]).collect())
}

/// Format 212: pairs of 12-bit two's-complement samples packed in 3 bytes
/// (low byte of the first, then the two high nibbles, then the low byte of
/// the second). A trailing lone byte pair yields one sample.
pub fn decode_212(dat: &[u8]) -> Vec<i32> {
    let mut out = Vec::with_capacity(dat.len() / 3 * 2 + 1);
    let sext = |v: i32| if v & 0x800 != 0 { v - 0x1000 } else { v };
    let mut chunks = dat.chunks_exact(3);
    for c in &mut chunks {
        let (b0, b1, b2) = (c[0] as i32, c[1] as i32, c[2] as i32);
        out.push(sext(b0 | ((b1 & 0x0F) << 8)));
        out.push(sext(b2 | ((b1 & 0xF0) << 4)));
    }
    if let [b0, b1] = chunks.remainder() {
        out.push(sext(*b0 as i32 | ((*b1 as i32 & 0x0F) << 8)));
    }
    out
}

/// Format 16: little-endian 16-bit two's-complement samples.
pub fn decode_16(dat: &[u8]) -> Result<Vec<i32>, EcgError> {
    if !dat.len().is_multiple_of(2) {
        return Err(EcgError::TruncatedSignal(
            "odd byte count in format 16".into(),
        ));
    }
    Ok(dat
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]) as i32)
        .collect())
}

/// One MIT-format annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// Absolute sample index.
    pub sample: u64,
    /// WFDB annotation code (1 = N, 5 = V, 28 = rhythm change, ...).
    pub code: u8,
    pub subtype: i8,
    pub chan: u8,
    pub num: i8,
    /// Auxiliary text, e.g. `(AFIB` on a rhythm annotation.
    pub aux: Option<String>,
}

impl Annotation {
    /// The WFDB mnemonic for the code (`N`, `V`, `+`, ...).
    pub fn symbol(&self) -> &'static str {
        code_symbol(self.code)
    }

    /// Whether ANSI/AAMI EC57 counts this annotation as a beat: the codes
    /// N L R a V F J A S E j / Q B ? ! e n f r.
    pub fn is_beat(&self) -> bool {
        is_beat_code(self.code)
    }
}

/// WFDB code of a rhythm-change annotation, whose aux text names the rhythm.
pub const RHYTHM: u8 = 28;

/// EC57 beat codes, by WFDB number (see `ecgcodes.h`).
pub fn is_beat_code(code: u8) -> bool {
    matches!(code, 1..=13 | 25 | 30 | 31 | 34 | 35 | 38 | 41)
}

/// WFDB mnemonic of an annotation code.
pub fn code_symbol(code: u8) -> &'static str {
    const SYMBOLS: [&str; 42] = [
        " ", "N", "L", "R", "a", "V", "F", "J", "A", "S", "E", "j", "/", "Q", "~", "", "|", "",
        "s", "T", "*", "D", "\"", "=", "p", "B", "^", "t", "+", "u", "?", "!", "[", "]", "e", "n",
        "@", "x", "f", "(", ")", "r",
    ];
    SYMBOLS.get(code as usize).copied().unwrap_or("")
}

/// Decode an MIT-format annotation file (`.atr`).
pub fn parse_annotations(bytes: &[u8]) -> Result<Vec<Annotation>, EcgError> {
    const SKIP: u16 = 59;
    const NUM: u16 = 60;
    const SUB: u16 = 61;
    const CHN: u16 = 62;
    const AUX: u16 = 63;
    let mut out: Vec<Annotation> = Vec::new();
    let mut time: u64 = 0;
    let (mut chan, mut num) = (0u8, 0i8);
    let mut i = 0usize;
    let word = |i: usize| -> Option<u16> {
        bytes
            .get(i..i + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    while let Some(w) = word(i) {
        let offset = i;
        i += 2;
        let a = w >> 10;
        let x = w & 0x3FF;
        match a {
            0 if x == 0 => break, // end of file
            SKIP => {
                // PDP-11 long: high 16 bits first, then low 16 bits.
                let hi = word(i).ok_or(EcgError::Annotation {
                    offset,
                    reason: "SKIP without its interval",
                })? as u32;
                let lo = word(i + 2).ok_or(EcgError::Annotation {
                    offset,
                    reason: "SKIP without its interval",
                })? as u32;
                i += 4;
                let skip = ((hi << 16) | lo) as i32;
                time = time
                    .checked_add_signed(skip as i64)
                    .ok_or(EcgError::Annotation {
                        offset,
                        reason: "SKIP moves before the start",
                    })?;
            }
            NUM => {
                num = x as u8 as i8;
                if let Some(last) = out.last_mut().filter(|a| a.sample == time) {
                    last.num = num;
                }
            }
            SUB => {
                let last = out.last_mut().ok_or(EcgError::Annotation {
                    offset,
                    reason: "SUB before any annotation",
                })?;
                last.subtype = x as u8 as i8;
            }
            CHN => {
                chan = x as u8;
                if let Some(last) = out.last_mut().filter(|a| a.sample == time) {
                    last.chan = chan;
                }
            }
            AUX => {
                let len = x as usize;
                let text = bytes.get(i..i + len).ok_or(EcgError::Annotation {
                    offset,
                    reason: "AUX runs past the end",
                })?;
                i += len + (len & 1); // padded to an even byte count
                let last = out.last_mut().ok_or(EcgError::Annotation {
                    offset,
                    reason: "AUX before any annotation",
                })?;
                let text = text.split(|b| *b == 0).next().unwrap_or(&[]);
                last.aux = Some(String::from_utf8_lossy(text).into_owned());
            }
            0..=49 => {
                time += x as u64;
                out.push(Annotation {
                    sample: time,
                    code: a as u8,
                    subtype: 0,
                    chan,
                    num,
                    aux: None,
                });
            }
            _ => {
                return Err(EcgError::Annotation {
                    offset,
                    reason: "unknown annotation code",
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEA: &str = "100 2 360 4\n100.dat 212 200 11 1024 995 -22131 0 MLII\n100.dat 212 200(5)/uV 11 1024 1011 20052 0 V5\n# comment\n";

    #[test]
    fn header_fields_are_parsed_with_wfdb_defaults() {
        let h = parse_header(HEA).expect("valid header");
        assert_eq!(h.record, "100");
        assert_eq!(h.fs_hz, 360.0);
        assert_eq!(h.n_samples, Some(4));
        assert_eq!(h.signals.len(), 2);
        assert_eq!(h.signals[0].format, 212);
        assert_eq!(h.signals[0].baseline, 1024);
        assert_eq!(h.signals[0].description, "MLII");
        assert_eq!(h.signals[1].baseline, 5);
        assert_eq!(h.signals[1].units, "uV");
        assert!((h.signals[0].microvolts_per_count() - 5.0).abs() < 1e-6);
    }

    #[test]
    fn header_errors_name_the_line() {
        assert!(matches!(
            parse_header("100 2 360 10\n100.dat 212 200\n"),
            Err(EcgError::Header { line: 1, .. })
        ));
        assert!(matches!(
            parse_header("100 1 abc\nx 16\n"),
            Err(EcgError::Header { line: 1, .. })
        ));
    }

    #[test]
    fn format_212_unpacks_two_signed_12_bit_samples_per_three_bytes() {
        // -1 (0xFFF) and 0x123: low byte of first, nibbles (hi of 2nd, hi of 1st), low byte of second
        assert_eq!(decode_212(&[0xFF, 0x1F, 0x23]), vec![-1, 0x123]);
        assert_eq!(decode_212(&[0x00, 0x08, 0x00]), vec![-2048, 0]);
    }

    #[test]
    fn format_16_is_little_endian_and_rejects_odd_lengths() {
        assert_eq!(
            decode_16(&[0x01, 0x80, 0xFF, 0x7F]).ok(),
            Some(vec![-32767, 32767])
        );
        assert!(decode_16(&[1, 2, 3]).is_err());
    }

    #[test]
    fn decode_channel_deinterleaves_frames_and_checks_length() {
        let h = parse_header("r 2 250 2\nr.dat 16\nr.dat 16\n").expect("header");
        let dat = [1, 0, 2, 0, 3, 0, 4, 0];
        assert_eq!(decode_channel(&h, &dat, 1).ok(), Some(vec![2, 4]));
        assert!(decode_channel(&h, &dat[..6], 0).is_err());
        assert!(matches!(
            decode_channel(&h, &dat, 2),
            Err(EcgError::NoSuchChannel { .. })
        ));
    }

    #[test]
    fn annotations_decode_times_codes_aux_and_skip() {
        let mut b = Vec::new();
        let w = |a: u16, x: u16| ((a << 10) | x).to_le_bytes();
        b.extend(w(1, 100)); // N at 100
        b.extend(w(59, 0)); // SKIP 70000
        b.extend(0u16.to_le_bytes()); // high word
        b.extend(70000u32.wrapping_sub(65536).to_le_bytes()[..2].iter()); // low word of 70000
        b.extend(w(28, 5)); // rhythm at 100+70000-65536+... computed below
        b.extend(w(63, 5));
        b.extend(b"(AFIB\0");
        b.extend(w(0, 0));
        // high word is 0, low word is 70000-65536 = 4464: SKIP of 4464 samples
        let a = parse_annotations(&b).expect("valid annotations");
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].sample, 100);
        assert!(a[0].is_beat());
        assert_eq!(a[1].sample, 100 + 4464 + 5);
        assert_eq!(a[1].code, RHYTHM);
        assert_eq!(a[1].aux.as_deref(), Some("(AFIB"));
        assert!(!a[1].is_beat());
    }

    #[test]
    fn truncated_annotation_is_an_error_not_a_panic() {
        let b = ((63u16 << 10) | 10).to_le_bytes();
        assert!(parse_annotations(&b).is_err());
    }

    #[test]
    fn ec57_beat_codes_match_their_symbols() {
        let beats: String = (0..=49u8)
            .filter(|c| is_beat_code(*c))
            .map(code_symbol)
            .collect();
        assert_eq!(beats, "NLRaVFJASEj/QB?!enfr");
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic_on_garbage(
            text in "[0-9a-z ./()+x:\n#-]{0,200}",
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            channel in 0usize..3,
        ) {
            let _ = parse_annotations(&bytes);
            if let Ok(h) = parse_header(&text) {
                let _ = decode_channel(&h, &bytes, channel);
            }
            let _ = crate::detect_record(&text, &bytes, channel);
            let hea = format!("r 2 360 {}\nr.dat 212\nr.dat 212\n", bytes.len() / 3);
            let _ = crate::detect_record(&hea, &bytes, channel);
        }
    }
}
