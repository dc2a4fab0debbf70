"""Business-time arithmetic for SLA clocks: adding working seconds to an instant, and counting
the working seconds between two instants, in an organization's time zone, weekly opening
hours and holidays. With no opening hours defined, every second counts (a 24/7 desk)."""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tenancy.models import BusinessHours, Holiday, Organization

# A calendar with hours on at least one weekday opens within a week plus its holidays; this
# bound only stops a loop over a calendar whose every open day is a holiday.
_MAX_DAYS = 3 * 366


@dataclass(frozen=True)
class BusinessCalendar:
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    hours: dict[int, tuple[tuple[time, time], ...]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()

    @property
    def always_open(self) -> bool:
        return not self.hours

    def _open_intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's opening intervals as UTC instants (so daylight-saving shifts are exact)."""
        if day in self.holidays:
            return []
        return [
            (
                datetime.combine(day, opens, tzinfo=self.zone).astimezone(UTC),
                datetime.combine(day, closes, tzinfo=self.zone).astimezone(UTC),
            )
            for opens, closes in self.hours.get(day.weekday(), ())
        ]

    def add(self, start: datetime, seconds: float) -> datetime:
        """The instant when ``seconds`` of business time have passed since ``start``."""
        if self.always_open:
            return start + timedelta(seconds=seconds)
        cursor = start.astimezone(UTC)
        remaining = max(0.0, seconds)
        day = cursor.astimezone(self.zone).date()
        for _ in range(_MAX_DAYS):
            for opens, closes in self._open_intervals(day):
                begin = max(opens, cursor)
                if begin >= closes:
                    continue
                available = (closes - begin).total_seconds()
                if remaining <= available:
                    return begin + timedelta(seconds=remaining)
                remaining -= available
            day += timedelta(days=1)
        return start + timedelta(seconds=seconds)

    def seconds_between(self, start: datetime, end: datetime) -> float:
        """Business seconds in [start, end); 0 when end is not after start."""
        if end <= start:
            return 0.0
        if self.always_open:
            return (end - start).total_seconds()
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        total = 0.0
        day = start.astimezone(self.zone).date() - timedelta(days=1)
        last = end.astimezone(self.zone).date()
        while day <= last:
            for opens, closes in self._open_intervals(day):
                overlap = (min(closes, end) - max(opens, start)).total_seconds()
                if overlap > 0:
                    total += overlap
            day += timedelta(days=1)
        return total

    def next_open(self, instant: datetime) -> datetime:
        """``instant`` itself when open, else when the organization opens next."""
        return self.add(instant, 0)

    def is_open(self, instant: datetime) -> bool:
        if self.always_open:
            return True
        instant = instant.astimezone(UTC)
        day = instant.astimezone(self.zone).date()
        return any(opens <= instant < closes for opens, closes in self._open_intervals(day))


def business_calendar(organization: Organization) -> BusinessCalendar:
    """The organization's calendar, read from its business hours and holidays."""
    hours: dict[int, list[tuple[time, time]]] = {}
    for row in BusinessHours.objects.filter(organization=organization).order_by("weekday", "opens"):
        hours.setdefault(row.weekday, []).append((row.opens, row.closes))
    holidays = frozenset(Holiday.objects.filter(organization=organization).values_list("date", flat=True))
    return BusinessCalendar(zone=organization.zone, hours={k: tuple(v) for k, v in hours.items()}, holidays=holidays)
