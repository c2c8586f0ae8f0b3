//! Declarative helpers for typed configs, exported for task crates: a struct whose every
//! field has a default, an optimizer struct that also carries Keras' clipping keys, and a
//! Model Garden "one-of" (a `type` key selecting one of several optional branches).

/// Declares a config struct whose fields all have defaults (`field: Type = default`), strict
/// about unknown keys, with `Default` built from those values. The calling crate needs
/// `serde` as a dependency.
#[macro_export]
macro_rules! defaulted_config {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* pub $field:ident : $ty:ty = $default:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name { $( $field: $default, )* }
            }
        }
    };
}

/// Declares an optimizer's config: [`defaulted_config!`] plus Keras' `clipnorm`, `clipvalue`
/// and `global_clipnorm` keys that every Model Garden optimizer config inherits.
#[macro_export]
macro_rules! optimizer_config {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* pub $field:ident : $ty:ty = $default:expr ),* $(,)?
        }
    ) => {
        $crate::defaulted_config! {
            $(#[$meta])*
            pub struct $name {
                $( $(#[$field_meta])* pub $field: $ty = $default, )*
                /// Clips each variable's gradient to this L2 norm (Keras `clipnorm`); null: off.
                pub clipnorm: Option<f64> = None,
                /// Clips each gradient element to `[-clipvalue, clipvalue]` (Keras
                /// `clipvalue`); null: off.
                pub clipvalue: Option<f64> = None,
                /// Clips all gradients together to this global L2 norm (Keras
                /// `global_clipnorm`); null: off.
                pub global_clipnorm: Option<f64> = None,
            }
        }

        impl $crate::config::optimization::HasClipping for $name {
            fn clipping(&self) -> $crate::config::optimization::GradientClipping {
                $crate::config::optimization::GradientClipping {
                    clipnorm: self.clipnorm,
                    clipvalue: self.clipvalue,
                    global_clipnorm: self.global_clipnorm,
                }
            }
        }
    };
}

/// Declares a Model Garden one-of: an enum of types (serialized in snake_case) and a struct
/// with the `type` key plus one optional branch per type. A branch that is absent takes its
/// defaults when selected; `normalized` keeps only the selected branch; `validate` checks it
/// through [`crate::config::Branch`] with the key `<key>.<branch>`; `From<branch>`
/// selects that branch. `default = <Variant>` makes a selection required (`kind: Kind`);
/// `default = none` makes it optional (`kind: Option<Kind>`, `type: null` selecting nothing,
/// as the warmup's).
#[macro_export]
macro_rules! one_of_config {
    (
        $(#[$meta:meta])*
        pub struct $name:ident;
        $(#[$kind_meta:meta])*
        pub enum $kind:ident;
        key = $key:literal;
        default = none;
        $( $(#[$variant_meta:meta])* $variant:ident => $field:ident : $cfg:ty ),+ $(,)?
    ) => {
        $crate::one_of_config! {
            @define $(#[$meta])* $name; $(#[$kind_meta])* $kind; $key;
            selection = Option<$kind>, default = None, select = Some;
            $( $(#[$variant_meta])* $variant => $field : $cfg ),+
        }
    };
    (
        $(#[$meta:meta])*
        pub struct $name:ident;
        $(#[$kind_meta:meta])*
        pub enum $kind:ident;
        key = $key:literal;
        default = $default:ident;
        $( $(#[$variant_meta:meta])* $variant:ident => $field:ident : $cfg:ty ),+ $(,)?
    ) => {
        $crate::one_of_config! {
            @define $(#[$meta])* $name; $(#[$kind_meta])* $kind; $key;
            selection = $kind, default = $kind::$default, select = std::convert::identity;
            $( $(#[$variant_meta])* $variant => $field : $cfg ),+
        }
    };
    (
        @define $(#[$meta:meta])* $name:ident; $(#[$kind_meta:meta])* $kind:ident; $key:literal;
        selection = $selection:ty, default = $default:expr, select = $select:path;
        $( $(#[$variant_meta:meta])* $variant:ident => $field:ident : $cfg:ty ),+
    ) => {
        $(#[$kind_meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $kind {
            $( $(#[$variant_meta])* $variant, )+
        }

        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            /// The selected branch.
            #[serde(rename = "type")]
            pub kind: $selection,
            $(
                #[doc = concat!("Settings used when `type: ", stringify!($field), "`.")]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $field: Option<$cfg>,
            )+
        }

        impl Default for $name {
            fn default() -> Self {
                Self::selecting($default)
            }
        }

        impl $name {
            /// `kind` selected, with its branch at its defaults and no other branch.
            pub fn selecting(kind: $selection) -> Self {
                $name {
                    kind,
                    $( $field: (kind == $select($kind::$variant)).then(<$cfg>::default), )+
                }
            }

            $(
                #[doc = concat!("The `", stringify!($field), "` branch, or its defaults when absent.")]
                pub fn $field(&self) -> $cfg {
                    self.$field.clone().unwrap_or_default()
                }
            )+

            /// Keeps only the selected branch (filled with defaults if absent).
            pub fn normalized(self) -> Self {
                let kind = self.kind;
                $name {
                    kind,
                    $( $field: (kind == $select($kind::$variant)).then(|| self.$field()), )+
                }
            }

            /// Checks the selected branch (nothing when none is selected).
            pub fn validate(&self) -> $crate::error::Result<()> {
                use $crate::config::Branch;
                $(
                    if self.kind == $select($kind::$variant) {
                        return self.$field().validate(concat!($key, ".", stringify!($field)));
                    }
                )+
                Ok(())
            }
        }

        $(
            impl From<$cfg> for $name {
                fn from(branch: $cfg) -> Self {
                    let mut out = Self::selecting($select($kind::$variant));
                    out.$field = Some(branch);
                    out
                }
            }
        )+
    };
}
