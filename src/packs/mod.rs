//! What the built-in procedure packs know beyond their runbooks' text.

pub mod keycloak_24_history;
