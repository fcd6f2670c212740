pub mod app_header;
pub mod field;
pub mod spinner;
pub mod strength_meter;
