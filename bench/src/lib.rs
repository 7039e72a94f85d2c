//! What the benchmark harnesses share: the processes they start, and stop whatever
//! happens ([`process`]). `src/bin/compare` (`bench/run`) and `src/bin/soak`
//! (`bench/soak`) are thin binaries over it.

pub mod process;
