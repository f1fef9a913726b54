//! A plain `wasi:cli/run` command: a component, but not a cairn plugin.

fn main() {
    println!("hello from a command, not a plugin");
}
