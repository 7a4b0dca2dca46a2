//! Core library.
