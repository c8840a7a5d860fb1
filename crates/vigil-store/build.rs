//! `sqlx::migrate!` embeds the migrations at compile time; without this,
//! cargo would not rebuild the store when only a migration file changes
//! (what `sqlx migrate build-script` writes).
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
    println!("cargo:rerun-if-changed=../../migrations/sqlite");
    println!("cargo:rerun-if-changed=../../migrations/postgres");
}
