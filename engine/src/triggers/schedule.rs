//! `schedule`: a rule's `cron` expression fired. Its rules test no field:
//! when they run is their `schedule:`.

use relais_sdk::ScheduleFired;

use super::{Field, Unit};

/// The `schedule` trigger.
#[derive(Debug)]
pub struct Schedule;

impl Unit for Schedule {
    type Event = ScheduleFired;
    const NAME: &'static str = "schedule";
    const FIELDS: &'static [Field] = &[];
    const SCHEDULED: bool = true;

    fn any(_: &ScheduleFired, _: Field, _: &mut dyn FnMut(&str) -> bool) -> bool {
        false
    }

    fn summary(fired: &ScheduleFired) -> String {
        format!("schedule of rule {} at {}", fired.rule, fired.fired_at)
    }
}
