pub mod ai;
pub mod domain;
