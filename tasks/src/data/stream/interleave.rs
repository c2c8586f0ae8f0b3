//! tf.data's deterministic `interleave`: `cycle_length` files open at once, `block_length`
//! consecutive records from each in turn. A slot whose file ends is empty until its next turn,
//! when it opens the next file of the epoch's order; the epoch ends when every file is read.

use grove_core::Result;
use serde::{Deserialize, Serialize};

use super::record_file::{FileAccess, FileReader, Location, Record};

/// Where an interleave stands: enough to reopen it without reading what it has passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterleavePosition {
    /// Index into the epoch's file order of the next file to open.
    pub next_file: usize,
    /// Per slot, where its open file's next record is (`None`: empty slot).
    pub slots: Vec<Option<Location>>,
    /// The slot whose turn it is.
    pub cycle_index: usize,
    /// Records the current slot has given in its current block.
    pub block_emitted: usize,
}

/// The records of an epoch's files, interleaved.
pub struct Interleave {
    order: Vec<usize>,
    next_file: usize,
    slots: Vec<Option<(usize, FileReader)>>,
    cycle_index: usize,
    block_emitted: usize,
    block_length: usize,
}

impl Interleave {
    /// The interleave of the files `order`, with `cycle_length` slots, from its start.
    pub fn new(order: Vec<usize>, cycle_length: usize, block_length: usize) -> Self {
        Interleave {
            order,
            next_file: 0,
            slots: (0..cycle_length).map(|_| None).collect(),
            cycle_index: 0,
            block_emitted: 0,
            block_length,
        }
    }

    /// The interleave of `order` at `position` (its slots' files reopened where they stood).
    pub fn resume(
        order: Vec<usize>,
        block_length: usize,
        position: &InterleavePosition,
        access: &mut FileAccess,
    ) -> Result<Self> {
        let slots = position
            .slots
            .iter()
            .map(|slot| {
                slot.map(|at| Ok((at.file(), access.open(at.file(), at.index(), at.offset())?)))
                    .transpose()
            })
            .collect::<Result<_>>()?;
        Ok(Interleave {
            order,
            next_file: position.next_file,
            slots,
            cycle_index: position.cycle_index,
            block_emitted: position.block_emitted,
            block_length,
        })
    }

    /// The next record, `None` once every file of the epoch is read.
    pub fn next_record(&mut self, access: &mut FileAccess) -> Result<Option<Record>> {
        loop {
            if self.next_file == self.order.len() && self.slots.iter().all(Option::is_none) {
                return Ok(None);
            }
            let slot = &mut self.slots[self.cycle_index];
            if slot.is_none() {
                let Some(&file) = self.order.get(self.next_file) else {
                    self.advance();
                    continue;
                };
                self.next_file += 1;
                *slot = Some((file, access.open(file, 0, 0)?));
            }
            let (_, reader) = slot.as_mut().expect("filled above");
            match access.next(reader)? {
                Some(record) => {
                    self.block_emitted += 1;
                    if self.block_emitted == self.block_length {
                        self.advance();
                    }
                    return Ok(Some(record));
                }
                None => {
                    *slot = None;
                    self.advance();
                }
            }
        }
    }

    /// Where the interleave stands.
    pub fn position(&self) -> InterleavePosition {
        InterleavePosition {
            next_file: self.next_file,
            slots: self
                .slots
                .iter()
                .map(|slot| {
                    slot.as_ref().map(|(file, reader)| {
                        let (index, offset) = reader.position();
                        Location(*file, index, offset)
                    })
                })
                .collect(),
            cycle_index: self.cycle_index,
            block_emitted: self.block_emitted,
        }
    }

    fn advance(&mut self) {
        self.cycle_index = (self.cycle_index + 1) % self.slots.len();
        self.block_emitted = 0;
    }
}
