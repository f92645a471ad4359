//! Annex-B byte streams: NAL units separated by `00 00 01` / `00 00 00 01` start codes.

/// Position of the first start code at or after `from`: returns
/// `(start_code_offset, payload_offset)`.
pub fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 3 <= data.len() {
        // Skip quickly: a start code needs data[i + 2] == 1 and two zeros before it.
        match data[i + 2] {
            1 if data[i] == 0 && data[i + 1] == 0 => {
                let sc = if i > from && data[i - 1] == 0 {
                    i - 1
                } else {
                    i
                };
                return Some((sc, i + 3));
            }
            0 => i += 1,
            _ => i += 3,
        }
    }
    None
}

/// Iterator over the NAL units of an Annex-B buffer (without their start codes).
///
/// Bytes before the first start code are ignored. Trailing zero bytes that
/// belong to the next start code are not part of the yielded NAL unit.
#[derive(Debug, Clone)]
pub struct NalUnits<'a> {
    data: &'a [u8],
    next: Option<usize>,
}

impl<'a> NalUnits<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        let next = find_start_code(data, 0).map(|(_, p)| p);
        Self { data, next }
    }
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let start = self.next?;
        match find_start_code(self.data, start) {
            Some((sc, payload)) => {
                self.next = Some(payload);
                let mut end = sc;
                while end > start && self.data[end - 1] == 0 {
                    end -= 1;
                }
                Some(&self.data[start..end])
            }
            None => {
                self.next = None;
                let mut end = self.data.len();
                while end > start && self.data[end - 1] == 0 {
                    end -= 1;
                }
                Some(&self.data[start..end])
            }
        }
    }
}

/// Iterate the NAL units of an Annex-B buffer.
pub fn nal_units(data: &[u8]) -> NalUnits<'_> {
    NalUnits::new(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        let nals: Vec<&[u8]> = nal_units(&data).collect();
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5][..]]
        );
    }

    #[test]
    fn ignores_leading_garbage_and_empty_input() {
        assert_eq!(nal_units(&[]).count(), 0);
        assert_eq!(nal_units(&[1, 2, 3]).count(), 0);
        let data = [9, 9, 0, 0, 1, 0x09, 0xf0];
        let nals: Vec<&[u8]> = nal_units(&data).collect();
        assert_eq!(nals, vec![&[0x09, 0xf0][..]]);
    }

    #[test]
    fn emulation_prevention_bytes_are_not_start_codes() {
        let data = [0, 0, 1, 0x65, 0, 0, 3, 1, 7];
        let nals: Vec<&[u8]> = nal_units(&data).collect();
        assert_eq!(nals, vec![&[0x65, 0, 0, 3, 1, 7][..]]);
    }
}
