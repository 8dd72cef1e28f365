//! A slab with generational keys: entries can be removed and their slots reused without a stale
//! key ever reaching the new entry (it finds nothing instead). Sites and stacks live in one, so
//! a days-long agent can drop what no process needs any more.

/// Bits of a key that hold the slot; the top byte is the slot's generation.
const SLOT_BITS: u32 = 24;
const SLOT_MASK: u32 = (1 << SLOT_BITS) - 1;
/// Slots available (keys are never 0: 0 means "none" for stack ids).
pub const MAX_SLOTS: usize = SLOT_MASK as usize - 1;

#[derive(Debug)]
struct Slot<T> {
    generation: u8,
    value: Option<T>,
}

#[derive(Debug)]
pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

fn key(slot: u32, generation: u8) -> u32 {
    (u32::from(generation) << SLOT_BITS) | (slot + 1)
}

fn split(key: u32) -> Option<(usize, u8)> {
    let slot = (key & SLOT_MASK).checked_sub(1)?;
    Some((slot as usize, (key >> SLOT_BITS) as u8))
}

impl<T> Slab<T> {
    /// Stores `value`; `None` when every slot is taken (16 million).
    pub fn insert(&mut self, value: T) -> Option<u32> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                if self.slots.len() >= MAX_SLOTS {
                    return None;
                }
                self.slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[slot as usize];
        s.value = Some(value);
        self.len += 1;
        Some(key(slot, s.generation))
    }

    pub fn get(&self, key: u32) -> Option<&T> {
        let (slot, generation) = split(key)?;
        let s = self.slots.get(slot)?;
        if s.generation == generation {
            s.value.as_ref()
        } else {
            None
        }
    }

    pub fn get_mut(&mut self, key: u32) -> Option<&mut T> {
        let (slot, generation) = split(key)?;
        let s = self.slots.get_mut(slot)?;
        if s.generation == generation {
            s.value.as_mut()
        } else {
            None
        }
    }

    /// Removes the entry; its slot is reused under a new generation.
    pub fn remove(&mut self, key: u32) -> Option<T> {
        let (slot, generation) = split(key)?;
        let s = self.slots.get_mut(slot)?;
        if s.generation != generation {
            return None;
        }
        let v = s.value.take()?;
        s.generation = s.generation.wrapping_add(1);
        self.free.push(slot as u32);
        self.len -= 1;
        Some(v)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((key(i as u32, s.generation), s.value.as_ref()?)))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut T)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| Some((key(i as u32, s.generation), s.value.as_mut()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_keys_never_reach_the_slot_reused() {
        let mut s: Slab<&str> = Slab::default();
        let a = s.insert("a").unwrap_or(0);
        let b = s.insert("b").unwrap_or(0);
        assert!(a != 0 && b != 0 && a != b);
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!(s.remove(a), None);
        let c = s.insert("c").unwrap_or(0);
        assert_ne!(c, a, "same slot, new generation");
        assert_eq!((s.get(a), s.get(c), s.len()), (None, Some(&"c"), 2));
        assert_eq!(s.get(0), None);
        let keys: Vec<u32> = s.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![c, b]);
    }
}
