//! `padding.json`: content lengths and their padded lengths (SPEC.md §7.3).

use serde::{Deserialize, Serialize};

use super::{check_against_file, hex, unhex_vec};
use crate::padding::{pad, padded_len, unpad};

const DESCRIPTION: &str = "Length padding of sealed content (SPEC.md §7.3). padded = content || \
    0x80 || zero bytes, up to the smallest bucket in [256, 512, 1024, 2048, 4096, 8192, 16384, \
    32768] that holds content_len + 1 bytes; beyond 32768, up to the next multiple of 32768. \
    Unpadding strips trailing zero bytes and then exactly one 0x80, so content may itself end \
    in zero bytes (second example). cases: content length -> padded length; examples: full \
    bytes.";

/// The lengths the vector covers: both sides of every boundary that matters.
const LENGTHS: [usize; 8] = [0, 1, 255, 256, 1000, 32767, 32768, 70000];

#[derive(Serialize, Deserialize)]
struct PaddingVector {
    description: String,
    cases: Vec<LengthCase>,
    examples: Vec<Example>,
}

#[derive(Serialize, Deserialize)]
struct LengthCase {
    content_len: usize,
    padded_len: usize,
}

#[derive(Serialize, Deserialize)]
struct Example {
    content: String,
    padded: String,
}

fn compute() -> PaddingVector {
    let cases = LENGTHS
        .iter()
        .map(|&content_len| LengthCase {
            content_len,
            padded_len: padded_len(content_len),
        })
        .collect();
    let examples = [&b"Kith"[..], &[0x00, 0x80, 0x00][..]]
        .iter()
        .map(|content| {
            let mut padded = content.to_vec();
            pad(&mut padded);
            Example {
                content: hex(content),
                padded: hex(padded),
            }
        })
        .collect();
    PaddingVector {
        description: DESCRIPTION.to_owned(),
        cases,
        examples,
    }
}

/// The rule as the spec states it, without the crate's code.
pub(super) fn spec_padded_len(content_len: usize) -> usize {
    let needed = content_len + 1;
    [256, 512, 1024, 2048, 4096, 8192, 16384, 32768]
        .into_iter()
        .find(|&bucket| bucket >= needed)
        .unwrap_or_else(|| needed.div_ceil(32768) * 32768)
}

#[test]
fn padding_vector() {
    let recorded = check_against_file("padding.json", &compute());
    let lengths: Vec<usize> = recorded.cases.iter().map(|c| c.content_len).collect();
    assert_eq!(lengths, LENGTHS);
    for case in &recorded.cases {
        assert_eq!(case.padded_len, spec_padded_len(case.content_len));
    }
    for example in &recorded.examples {
        let content = unhex_vec(&example.content);
        let padded = unhex_vec(&example.padded);
        assert_eq!(padded.len(), spec_padded_len(content.len()));
        assert_eq!(padded[..content.len()], content[..]);
        assert_eq!(padded[content.len()], 0x80);
        assert!(padded[content.len() + 1..].iter().all(|&b| b == 0));
        assert_eq!(unpad(&padded), Some(&content[..]));
    }
}
