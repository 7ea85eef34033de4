//! Dates of a series' rows and the calendar facts computed from them: the weekday, the month
//! and the US federal holidays.

use chrono::{Datelike, Days, Months, NaiveDate, Weekday};

/// The date of each row, from one column of ISO dates (`YYYY-MM-DD`, or `YYYY-MM` for monthly
/// data, read as the month's first day) or from three columns of year, month and day (`cells`:
/// the date columns' cells of each row). Errors name the line (`lines`) and the cell.
pub fn parse_dates(cells: &[Vec<String>], lines: &[usize]) -> Result<Vec<NaiveDate>, String> {
    cells
        .iter()
        .zip(lines)
        .map(|(row, line)| {
            let date = match &row[..] {
                [iso] => NaiveDate::parse_from_str(iso, "%Y-%m-%d")
                    .or_else(|_| NaiveDate::parse_from_str(&format!("{iso}-01"), "%Y-%m-%d"))
                    .ok(),
                [y, m, d] => match (y.parse(), m.parse(), d.parse()) {
                    (Ok(y), Ok(m), Ok(d)) => NaiveDate::from_ymd_opt(y, m, d),
                    _ => None,
                },
                _ => None,
            };
            date.ok_or_else(|| {
                format!(
                    "line {line}: `{}` is not a date (YYYY-MM-DD, YYYY-MM, or year, month and day columns)",
                    row.join(",")
                )
            })
        })
        .collect()
}

/// `dates` followed by `more` dates at the same spacing: a fixed number of days (daily or
/// weekly data) or of months (monthly data on one day of the month). An error if the dates are
/// not evenly spaced in either sense, or fewer than two.
pub fn extend(dates: &[NaiveDate], more: usize) -> Result<Vec<NaiveDate>, String> {
    let mut all = dates.to_vec();
    if more == 0 {
        return Ok(all);
    }
    let uneven = || {
        "the dates are not evenly spaced (by days or by months), so the calendar cannot be \
         continued past the file"
            .to_string()
    };
    let [.., before, last] = dates[..] else {
        return Err(uneven());
    };
    let pairs = || dates.windows(2);
    let days = (last - before).num_days();
    let months = (last.year() - before.year()) * 12 + last.month() as i32 - before.month() as i32;
    let next: Box<dyn Fn(NaiveDate, usize) -> Option<NaiveDate>> =
        if days > 0 && pairs().all(|p| (p[1] - p[0]).num_days() == days) {
            Box::new(move |d, k| d.checked_add_days(Days::new(days as u64 * k as u64)))
        } else if months > 0
            && pairs().all(|p| p[0].checked_add_months(Months::new(months as u32)) == Some(p[1]))
        {
            Box::new(move |d, k| d.checked_add_months(Months::new(months as u32 * k as u32)))
        } else {
            return Err(uneven());
        };
    for k in 1..=more {
        all.push(next(last, k).ok_or_else(uneven)?);
    }
    Ok(all)
}

/// Whether `date` is a US federal holiday as federal offices observe it (5 U.S.C. 6103): New
/// Year's Day, Martin Luther King Jr. Day (from 1986), Washington's Birthday, Memorial Day,
/// Juneteenth (from 2021), Independence Day, Labor Day, Columbus Day, Veterans Day, Thanksgiving
/// and Christmas, with the Monday dates of the Uniform Monday Holiday Act from 1971 (Veterans
/// Day on the fourth Monday of October 1971-1977), and a holiday on a Saturday observed the
/// Friday before, on a Sunday the Monday after.
pub fn is_us_federal_holiday(date: NaiveDate) -> bool {
    let y = date.year();
    [y, y + 1]
        .iter()
        .flat_map(|&y| us_federal_holidays(y))
        .any(|h| observed(h) == date)
}

/// The US federal holidays of `year` on their own dates (before any move to a weekday).
fn us_federal_holidays(year: i32) -> Vec<NaiveDate> {
    let day = |m, d| NaiveDate::from_ymd_opt(year, m, d);
    let nth = |m, w, n| NaiveDate::from_weekday_of_month_opt(year, m, w, n);
    let last_monday_of_may = nth(5, Weekday::Mon, 5).or_else(|| nth(5, Weekday::Mon, 4));
    let monday_act = year >= 1971;
    [
        day(1, 1),
        if year >= 1986 {
            nth(1, Weekday::Mon, 3)
        } else {
            None
        },
        if monday_act {
            nth(2, Weekday::Mon, 3)
        } else {
            day(2, 22)
        },
        if monday_act {
            last_monday_of_may
        } else {
            day(5, 30)
        },
        if year >= 2021 { day(6, 19) } else { None },
        day(7, 4),
        nth(9, Weekday::Mon, 1),
        if monday_act {
            nth(10, Weekday::Mon, 2)
        } else {
            day(10, 12)
        },
        if (1971..=1977).contains(&year) {
            nth(10, Weekday::Mon, 4)
        } else {
            day(11, 11)
        },
        nth(11, Weekday::Thu, 4),
        day(12, 25),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The day a holiday on `date` is observed: Saturday's on Friday, Sunday's on Monday.
fn observed(date: NaiveDate) -> NaiveDate {
    match date.weekday() {
        Weekday::Sat => date.pred_opt().unwrap_or(date),
        Weekday::Sun => date.succ_opt().unwrap_or(date),
        _ => date,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn federal_holidays_follow_the_law_of_each_year() {
        // 1969: fixed dates before the Monday act; July 4th was a Friday.
        for h in [d(1969, 1, 1), d(1969, 2, 21), d(1969, 5, 30), d(1969, 7, 4)] {
            assert!(is_us_federal_holiday(h), "{h}");
        }
        // Feb 22, 1969 was a Saturday: observed on Friday the 21st, not on the day itself.
        assert!(!is_us_federal_holiday(d(1969, 2, 22)));
        // 1975: Monday holidays, Veterans Day on the fourth Monday of October.
        for h in [
            d(1975, 2, 17),
            d(1975, 5, 26),
            d(1975, 10, 13),
            d(1975, 10, 27),
        ] {
            assert!(is_us_federal_holiday(h), "{h}");
        }
        assert!(!is_us_federal_holiday(d(1975, 11, 11)));
        assert!(
            !is_us_federal_holiday(d(1985, 1, 21)),
            "no MLK day before 1986"
        );
        assert!(is_us_federal_holiday(d(1986, 1, 20)));
        // New Year's Day 1983 was a Saturday: observed on Friday, December 31, 1982.
        assert!(is_us_federal_holiday(d(1982, 12, 31)));
        assert!(!is_us_federal_holiday(d(1983, 1, 1)));
        // Christmas 1988 was a Sunday: observed on Monday the 26th.
        assert!(is_us_federal_holiday(d(1988, 12, 26)));
        assert!(is_us_federal_holiday(d(1988, 11, 24)), "Thanksgiving 1988");
        assert!(
            is_us_federal_holiday(d(2021, 6, 18)),
            "Juneteenth 2021 (a Saturday)"
        );
        assert!(!is_us_federal_holiday(d(1988, 6, 20)));
        // Every year 1969-1988 has 9 to 10 observed holidays inside it.
        for y in 1969..=1988 {
            let days = (1..=366)
                .filter_map(|o| NaiveDate::from_yo_opt(y, o))
                .filter(|&x| is_us_federal_holiday(x))
                .count();
            let expected = if y >= 1986 { 10 } else { 9 };
            // A Saturday New Year's Day moves into the year before.
            let moved = d(y + 1, 1, 1).weekday() == Weekday::Sat;
            let lost = d(y, 1, 1).weekday() == Weekday::Sat;
            assert_eq!(days, expected + moved as usize - lost as usize, "{y}");
        }
    }

    #[test]
    fn dates_are_read_and_continued() {
        let lines = [2, 3, 4];
        let iso = [["1949-01"], ["1949-02"], ["1949-03"]].map(|r| r.map(String::from).to_vec());
        let monthly = parse_dates(&iso, &lines).unwrap();
        assert_eq!(
            extend(&monthly, 2).unwrap()[3..],
            [d(1949, 4, 1), d(1949, 5, 1)]
        );
        let ymd = [["1969", "1", "30"], ["1969", "1", "31"], ["1969", "2", "1"]];
        let daily = parse_dates(&ymd.map(|r| r.map(String::from).to_vec()), &lines).unwrap();
        assert_eq!(extend(&daily, 1).unwrap()[3], d(1969, 2, 2));
        let bad = [vec!["1969-02-30".to_string()]];
        let err = parse_dates(&bad, &[7]).unwrap_err();
        assert!(
            err.starts_with("line 7: `1969-02-30` is not a date"),
            "{err}"
        );
        let gaps = [d(2000, 1, 1), d(2000, 1, 2), d(2000, 1, 4)];
        assert!(extend(&gaps, 1).unwrap_err().contains("not evenly spaced"));
        assert!(extend(&gaps[..1], 1).is_err());
        assert_eq!(extend(&gaps, 0).unwrap(), gaps);
    }
}
