//! Pure clinical scoring for Vigil (work in progress).
