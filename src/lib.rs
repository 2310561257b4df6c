pub mod ai;
pub mod domain;
pub mod routing;
