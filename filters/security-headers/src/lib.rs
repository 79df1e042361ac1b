//! Palisade security-headers filter.
