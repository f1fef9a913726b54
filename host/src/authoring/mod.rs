//! Help for plugin authors: golden cases (`cairn plugin test`) and project
//! templates (`cairn plugin new`).

pub mod golden;
pub mod scaffold;
