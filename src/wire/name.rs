//! Wire names of fieldless enums, read from their `Serialize` impl, so that the serde attributes
//! (`rename_all`, `rename`) are the only place a name is spelled and `Display` cannot disagree
//! with the wire.

use std::fmt;

use serde::Serialize;
use serde::ser::{self, Impossible};

/// The name serde gives `value`, a unit variant of a fieldless enum.
///
/// # Panics
/// If `value` does not serialize as a unit variant: a bug in the calling type, which its own
/// tests catch (every caller is a fieldless enum of this crate).
pub(crate) fn variant_name<T: Serialize>(value: &T) -> &'static str {
    value
        .serialize(VariantName)
        .expect("a fieldless enum serializes as a unit variant")
}

/// A serializer that accepts a unit variant and nothing else.
struct VariantName;

#[derive(Debug)]
struct NotAUnitVariant;

impl fmt::Display for NotAUnitVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("value is not a unit variant")
    }
}

impl std::error::Error for NotAUnitVariant {}

impl ser::Error for NotAUnitVariant {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Self
    }
}

type Reject = Impossible<&'static str, NotAUnitVariant>;

/// Every `serialize_*` method this serializer refuses, by name and argument types.
macro_rules! reject {
    ($($method:ident($($arg:ty),*) -> $ret:ty;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ret, NotAUnitVariant> {
            Err(NotAUnitVariant)
        })*
    };
}

impl ser::Serializer for VariantName {
    type Ok = &'static str;
    type Error = NotAUnitVariant;
    type SerializeSeq = Reject;
    type SerializeTuple = Reject;
    type SerializeTupleStruct = Reject;
    type SerializeTupleVariant = Reject;
    type SerializeMap = Reject;
    type SerializeStruct = Reject;
    type SerializeStructVariant = Reject;

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<&'static str, NotAUnitVariant> {
        Ok(variant)
    }

    reject! {
        serialize_bool(bool) -> &'static str;
        serialize_i8(i8) -> &'static str;
        serialize_i16(i16) -> &'static str;
        serialize_i32(i32) -> &'static str;
        serialize_i64(i64) -> &'static str;
        serialize_u8(u8) -> &'static str;
        serialize_u16(u16) -> &'static str;
        serialize_u32(u32) -> &'static str;
        serialize_u64(u64) -> &'static str;
        serialize_f32(f32) -> &'static str;
        serialize_f64(f64) -> &'static str;
        serialize_char(char) -> &'static str;
        serialize_str(&str) -> &'static str;
        serialize_bytes(&[u8]) -> &'static str;
        serialize_none() -> &'static str;
        serialize_unit() -> &'static str;
        serialize_unit_struct(&'static str) -> &'static str;
        serialize_seq(Option<usize>) -> Reject;
        serialize_tuple(usize) -> Reject;
        serialize_tuple_struct(&'static str, usize) -> Reject;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Reject;
        serialize_map(Option<usize>) -> Reject;
        serialize_struct(&'static str, usize) -> Reject;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Reject;
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<&'static str, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<&'static str, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<&'static str, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "snake_case")]
    enum Sample {
        TwoWords,
        #[serde(rename = "custom")]
        Renamed,
    }

    #[test]
    fn names_follow_the_serde_attributes() {
        assert_eq!(variant_name(&Sample::TwoWords), "two_words");
        assert_eq!(variant_name(&Sample::Renamed), "custom");
    }

    #[test]
    #[should_panic(expected = "unit variant")]
    fn anything_else_is_a_bug() {
        variant_name(&"not an enum");
    }
}
