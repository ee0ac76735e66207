#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// HTTP dates (RFC 9110 §5.6.7): seconds since 1970 written as IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), and read in any of the three forms a recipient must
/// accept (IMF-fixdate, RFC 850, asctime). No calendar or locale is involved.
enum HTTPDate {
    private static let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let longWeekdays = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// `seconds` since 1970 as IMF-fixdate.
    static func format(_ seconds: Int64) -> String {
        let days = seconds.floorDivided(by: 86_400)
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = civil(fromDays: days)
        let weekday = Int((days + 4).floorModulo(7))  // 1970-01-01 was a Thursday
        return "\(weekdays[weekday]), \(two(day)) \(months[month - 1]) \(four(year)) "
            + "\(two(Int(secondOfDay / 3600))):\(two(Int(secondOfDay / 60 % 60))):\(two(Int(secondOfDay % 60))) GMT"
    }

    /// The seconds since 1970 that `text` names, or `nil` when it is not an HTTP date.
    static func parse(_ text: some StringProtocol) -> Int64? {
        let trimmed = text.trimmingWhitespace()
        let words = trimmed.split(separator: " ", omittingEmptySubsequences: false)
        if words.count == 6, words[0].hasSuffix(","), weekdays.contains(String(words[0].dropLast())), words[5] == "GMT" {
            // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
            guard words[1].utf8.count == 2, words[3].utf8.count == 4, let day = number(words[1]),
                let month = monthNumber(words[2]), let year = number(words[3])
            else { return nil }
            return seconds(year: year, month: month, day: day, time: words[4])
        }
        if words.count == 4, words[0].hasSuffix(","), longWeekdays.contains(String(words[0].dropLast())), words[3] == "GMT" {
            // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
            let parts = words[1].split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0].utf8.count == 2, parts[2].utf8.count == 2, let day = number(parts[0]),
                let month = monthNumber(parts[1]), let shortYear = number(parts[2])
            else { return nil }
            return seconds(year: fullYear(shortYear), month: month, day: day, time: words[2])
        }
        // asctime: Sun Nov  6 08:49:37 1994 (a one-digit day is preceded by a second space)
        let packed = trimmed.split(separator: " ", omittingEmptySubsequences: true)
        if packed.count == 5, weekdays.contains(String(packed[0])), let month = monthNumber(packed[1]),
            (1...2).contains(packed[2].utf8.count), let day = number(packed[2]), packed[4].utf8.count == 4,
            let year = number(packed[4])
        {
            return seconds(year: year, month: month, day: day, time: packed[3])
        }
        return nil
    }

    // MARK: Calendar arithmetic (proleptic Gregorian, days since 1970-01-01)

    /// Year, month (1...12) and day (1...31) of a day number (H. Hinnant's `civil_from_days`).
    static func civil(fromDays days: Int64) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = z.floorDivided(by: 146_097)
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shifted = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shifted + 2) / 5 + 1
        let month = shifted < 10 ? shifted + 3 : shifted - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (Int(year), Int(month), Int(day))
    }

    /// The day number of a date (H. Hinnant's `days_from_civil`).
    static func days(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(year) - (month <= 2 ? 1 : 0)
        let era = y.floorDivided(by: 400)
        let yearOfEra = y - era * 400
        let m = Int64(month)
        let dayOfYear = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    private static func seconds(year: Int, month: Int, day: Int, time: Substring) -> Int64? {
        let parts = time.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ $0.utf8.count == 2 }), let hour = number(parts[0]),
            let minute = number(parts[1]), let second = number(parts[2]), hour < 24, minute < 60, second <= 60,
            (1...31).contains(day), day <= daysIn(month: month, year: year)
        else { return nil }
        return days(year: year, month: month, day: day) * 86_400 + Int64(hour * 3600 + minute * 60 + min(second, 59))
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// A two-digit year of RFC 850: the most recent year with those digits that is not more
    /// than 50 years in the future (RFC 9110 §5.6.7).
    private static func fullYear(_ short: Int) -> Int {
        let now = Int64(Date().timeIntervalSince1970)
        let thisYear = civil(fromDays: now.floorDivided(by: 86_400)).year
        var year = thisYear - thisYear % 100 + short
        if year > thisYear + 50 { year -= 100 }
        return year
    }

    private static func monthNumber(_ name: Substring) -> Int? {
        months.firstIndex(of: String(name)).map { $0 + 1 }
    }

    /// Decimal digits only (no sign, no spaces), at most 4 of them.
    private static func number(_ text: Substring) -> Int? {
        guard (1...4).contains(text.utf8.count), text.utf8.allSatisfy({ (48...57).contains($0) }) else { return nil }
        return Int(text)
    }

    private static func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }

    private static func four(_ value: Int) -> String {
        let text = "\(value)"
        return String(repeating: "0", count: max(0, 4 - text.count)) + text
    }
}

extension Int64 {
    /// Division rounding toward negative infinity.
    fileprivate func floorDivided(by divisor: Int64) -> Int64 {
        let quotient = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? quotient - 1 : quotient
    }

    /// The remainder of ``floorDivided(by:)``: never negative for a positive divisor.
    fileprivate func floorModulo(_ divisor: Int64) -> Int64 {
        self - floorDivided(by: divisor) * divisor
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (optional whitespace of RFC 9110 §5.6.3).
    func trimmingWhitespace() -> Substring {
        let whole = self[...]
        let isSpace = { (character: Character) in character == " " || character == "\t" }
        guard let first = whole.firstIndex(where: { !isSpace($0) }) else { return Substring() }
        let last = whole.lastIndex(where: { !isSpace($0) })!
        return Substring(whole[first...last])
    }
}
