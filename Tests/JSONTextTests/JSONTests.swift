import Foundation
import JSONText
import Testing

/// The text the faces publish: valid JSON that any parser reads back as the value written.
@Suite("JSON text")
struct JSONTests {
    @Test func scalarsAreWrittenAsJSON() {
        #expect(JSON.null.text == "null")
        #expect(JSON.bool(true).text == "true")
        #expect(JSON.int(-9_223_372_036_854_775_808).text == "-9223372036854775808")
        #expect(JSON.integer(UInt32.max).text == "4294967295")
        #expect(JSON.integer(UInt64.max).text == "18446744073709551615", "no trap past Int64.max")
        #expect(JSON.number("230.4").text == "230.4")
        #expect(JSON.double(0.1).text == "0.1", "the shortest text, not 0.10000000000000001")
        #expect(JSON.double(1e-5).text == "1e-05")
    }

    /// JSON has no infinity or NaN: a value that is not finite is written as null.
    @Test func nonFiniteDoublesAreNull() {
        #expect(JSON.double(.infinity).text == "null")
        #expect(JSON.double(-.infinity).text == "null")
        #expect(JSON.double(.nan).text == "null")
    }

    @Test func stringsEscapeQuotesBackslashesAndControls() throws {
        let nasty = "a\"b\\c\nd\re\tf\u{01}g\u{1F}h é 🌞"
        let text = JSON.string(nasty).text
        #expect(text == #""a\"b\\c\nd\re\tf\u0001g\u001fh é 🌞""#)
        let parsed = try JSONSerialization.jsonObject(with: Data("[\(text)]".utf8)) as? [String]
        #expect(parsed == [nasty])
    }

    /// Objects keep the order given; `sortedObject` sorts and leaves `nil` members out, as a
    /// JSONEncoder with sorted keys leaves out a struct's `nil` optionals.
    @Test func objectsKeepOrderAndSortedObjectsSortAndDropNils() {
        #expect(JSON.object([("b", .int(1)), ("a", .array([.null, .bool(false)]))]).text == #"{"b":1,"a":[null,false]}"#)
        #expect(JSON.sortedObject([("b", .int(1)), ("gone", nil), ("a", .string("x"))]).text == #"{"a":"x","b":1}"#)
        #expect(JSON.object([]).text == "{}")
        #expect(JSON.array([]).text == "[]")
    }

    /// Every finite double is written as text that reads back as the very same double (checked with
    /// Swift's exact parser: Foundation's JSONSerialization rounds 0.30000000000000004 on Linux).
    @Test func doublesReadBackExactly() {
        let doubles = [0.0, -0.0, 1.5, 230.4, 1e300, -2.5e-300, 0.30000000000000004, 1_796_000_000.25, .leastNonzeroMagnitude]
        for value in doubles {
            let text = JSON.double(value).text
            #expect(Double(text) == value, "\(text)")
            #expect(text.allSatisfy { "0123456789-+.e".contains($0) }, "\(text) is a JSON number")
        }
    }

    /// A nested document parses back as the values written.
    @Test func documentsParseBack() throws {
        let document = JSON.object([
            ("doubles", .array([.double(1.5), .double(230.4)])), ("n", .integer(Int8(-7))), ("s", .string("x")),
            ("nested", .object([("empty", .array([])), ("no", .null)])),
        ])
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(document.text.utf8)) as? [String: Any])
        #expect((parsed["doubles"] as? [Double]) == [1.5, 230.4])
        #expect(parsed["n"] as? Int == -7)
        #expect(parsed["s"] as? String == "x")
        let nested = try #require(parsed["nested"] as? [String: Any])
        #expect((nested["empty"] as? [Any])?.isEmpty == true)
        #expect(nested["no"] is NSNull)
    }

    @Test func writeAppendsToWhatIsThere() {
        var out = "x="
        JSON.array([.int(1), .int(2)]).write(to: &out)
        #expect(out == "x=[1,2]")
        #expect(JSON.int(1) == JSON.number("1"), "values are equal when their text is")
    }
}
