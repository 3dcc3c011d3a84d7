//! erlmcp
