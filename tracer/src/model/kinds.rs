//! The state's kinds in the report: typed in the model, their JSON spelling (`as_str`) the
//! contract. Renderers match the enums, never the strings.

use serde::{Serialize, Serializer};

use crate::state::{Resource, incidents::IncidentKind, stalls::ChannelKind};

impl Serialize for Resource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Serialize for IncidentKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Serialize for ChannelKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
