pub mod ai;
pub mod domain;
pub mod mail;
pub mod routing;
