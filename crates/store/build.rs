//! `sqlx::migrate!` embeds the migration files at compile time; a new or changed file must rebuild this crate.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
