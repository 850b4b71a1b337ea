//! Who a host fetches a blob from: its parent in a tree of bounded fan-out, or, when that
//! source failed it, the nearest live ancestor, then any host holding the blob whole, then the
//! host the jump host is feeding, and the jump host itself only when nothing else is left. So
//! the jump host feeds one host at a time whatever fails.

use std::collections::HashSet;

/// Where a host's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The jump host, over SSH.
    Jump,
    /// Another host of the run (an index into the run's hosts), over the site network.
    Peer(usize),
}

/// The relay of one blob: who needs it, who has it, who failed.
#[derive(Debug)]
pub struct Tree {
    parent: Vec<Option<usize>>,
    /// Holds the blob whole and verified.
    pub complete: Vec<bool>,
    /// Gone for the rest of the run (its agent ended).
    pub failed: Vec<bool>,
    /// The host the jump host is sending to, if any.
    pub jump_feeding: Option<usize>,
    /// Receivers currently fetching from each host.
    pub load: Vec<usize>,
    /// Hosts a receiver caught sending bytes that do not hash to the digest.
    pub refused: HashSet<usize>,
}

impl Tree {
    /// A tree over `needing` (indices into `hosts` hosts, in order: the first is fed first)
    /// where each host serves at most `fan_out` children.
    pub fn new(hosts: usize, needing: &[usize], fan_out: usize) -> Self {
        let k = fan_out.max(1);
        let mut parent = vec![None; hosts];
        for (i, &h) in needing.iter().enumerate().skip(1) {
            parent[h] = Some(needing[(i - 1) / k]);
        }
        Self {
            parent,
            complete: vec![false; hosts],
            failed: vec![false; hosts],
            jump_feeding: None,
            load: vec![0; hosts],
            refused: HashSet::new(),
        }
    }

    /// The source for host `h`, never one in `excluded` (sources that already failed it).
    /// Choosing the jump host records `h` as the host it feeds.
    pub fn choose(&mut self, h: usize, excluded: &HashSet<usize>) -> Source {
        let usable = |p: usize| p != h && !self.failed[p] && !excluded.contains(&p);
        let mut a = self.parent[h];
        while let Some(p) = a {
            if usable(p) {
                return Source::Peer(p);
            }
            a = self.parent[p];
        }
        let whole = (0..self.complete.len())
            .filter(|&p| self.complete[p] && usable(p))
            .min_by_key(|&p| self.load[p]);
        if let Some(p) = whole {
            return Source::Peer(p);
        }
        if let Some(j) = self.jump_feeding.filter(|&j| usable(j)) {
            return Source::Peer(j);
        }
        self.jump_feeding = Some(h);
        Source::Jump
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> HashSet<usize> {
        HashSet::new()
    }

    #[test]
    fn the_first_host_is_fed_by_the_jump_host_and_the_others_by_their_parents() {
        let mut t = Tree::new(7, &[0, 1, 2, 3, 4, 5, 6], 2);
        assert_eq!(t.choose(0, &none()), Source::Jump);
        let parents: Vec<Source> = (1..7).map(|h| t.choose(h, &none())).collect();
        use Source::Peer;
        assert_eq!(
            parents,
            [Peer(0), Peer(0), Peer(1), Peer(1), Peer(2), Peer(2)]
        );
    }

    #[test]
    fn a_failed_parent_is_replaced_by_the_nearest_live_ancestor() {
        let mut t = Tree::new(7, &[0, 1, 2, 3, 4, 5, 6], 2);
        t.failed[1] = true;
        assert_eq!(t.choose(3, &none()), Source::Peer(0));
    }

    #[test]
    fn after_the_root_fails_the_jump_host_feeds_one_host_and_the_rest_fetch_from_it() {
        let mut t = Tree::new(5, &[0, 1, 2, 3, 4], 4);
        assert_eq!(t.choose(0, &none()), Source::Jump);
        t.failed[0] = true;
        let first = t.choose(1, &HashSet::from([0]));
        assert_eq!(first, Source::Jump);
        assert_eq!(t.choose(2, &HashSet::from([0])), Source::Peer(1));
        assert_eq!(t.choose(3, &HashSet::from([0])), Source::Peer(1));
    }

    #[test]
    fn a_host_that_served_bad_bytes_is_not_asked_again_by_that_receiver() {
        let mut t = Tree::new(4, &[1, 2, 3], 4);
        t.complete[0] = true;
        // Host 1 is the root, and host 0 already had the blob: the root fetches from it.
        assert_eq!(t.choose(1, &none()), Source::Peer(0));
        assert_eq!(t.choose(2, &none()), Source::Peer(1));
        t.complete[1] = true;
        t.load[1] = 1;
        // Host 2 refused host 1's bytes: host 0 holds it whole.
        assert_eq!(t.choose(2, &HashSet::from([1])), Source::Peer(0));
        // Refused by both: the jump host is the last resort.
        assert_eq!(t.choose(2, &HashSet::from([0, 1])), Source::Jump);
    }
}
