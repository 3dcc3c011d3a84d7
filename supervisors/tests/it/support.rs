//! Owns what the supervision tests share: the probe worker ([`probe`]).

pub(crate) mod probe;
