import Foundation
import SunSpec
import Testing

/// A model as SunSpec defines it, read from the definition files in Fixtures/.
struct Definition {
    struct Point {
        let name: String
        let type: String
        let size: Int
        let offset: Int
    }

    let id: Int
    let points: [Point]

    init(model id: Int) throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/model_\(id).json")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let group = try #require(json["group"] as? [String: Any])
        // These three models have no repeating groups: every point is in the top group.
        #expect(group["groups"] == nil, "model \(id) has nested groups")
        var offset = 0
        var points: [Point] = []
        for point in try #require(group["points"] as? [[String: Any]]) {
            let size = try #require(point["size"] as? Int)
            points.append(Point(
                name: try #require(point["name"] as? String), type: try #require(point["type"] as? String), size: size,
                offset: offset))
            offset += size
        }
        self.id = try #require(json["id"] as? Int)
        self.points = points
    }

    func offset(_ name: String) throws -> Int { try #require(points.first { $0.name == name }).offset }
    var size: Int { points.last.map { $0.offset + $0.size } ?? 0 }
}

/// "Not implemented" by SunSpec type, as the SunSpec information model specifies it.
let notImplementedByType: [String: [UInt16]] = [
    "int16": [0x8000], "sunssf": [0x8000], "uint16": [0xFFFF], "enum16": [0xFFFF], "acc32": [0, 0],
    "bitfield32": [0xFFFF, 0xFFFF], "int32": [0x8000, 0], "uint32": [0xFFFF, 0xFFFF], "float32": [0x7FC0, 0],
    "pad": [0x8000],
]

@Suite("Model layouts against SunSpec's definitions")
struct ModelDefinitionTests {
    static let layouts: [(Int, ModelLayout)] = [(1, .common), (103, .inverterThreePhase), (203, .meterWye)]

    @Test(arguments: layouts)
    func everyPointHasTheDefinitionsOffsetTypeAndSize(model: Int, layout: ModelLayout) throws {
        let definition = try Definition(model: model)
        #expect(definition.id == model)
        #expect(Int(layout.id) == model)
        #expect(layout.points.map(\.name) == definition.points.map(\.name))
        for (ours, theirs) in zip(layout.points, definition.points) {
            #expect(ours.offset == theirs.offset, "\(theirs.name)")
            #expect(ours.size == theirs.size, "\(theirs.name)")
            #expect(ours.type.rawValue == theirs.type, "\(theirs.name)")
        }
        #expect(layout.size == definition.size)
    }

    @Test(arguments: [(1, 66), (103, 50), (203, 105)])
    func lengthsAreTheIssuesAndTheDefinitions(model: Int, length: Int) throws {
        let layout = try #require(Self.layouts.first { $0.0 == model }?.1)
        #expect(Int(layout.length) == length)
        #expect(try Definition(model: model).size == length + 2)
    }

    @Test(arguments: layouts)
    func unsetPointsReadAsNotImplemented(model: Int, layout: ModelLayout) throws {
        let definition = try Definition(model: model)
        let registers = layout.notImplemented
        #expect(registers.count == definition.size)
        #expect(registers[0] == UInt16(model))
        #expect(registers[1] == UInt16(definition.size - 2))
        for point in definition.points.dropFirst(2) {
            let value = Array(registers[point.offset..<(point.offset + point.size)])
            if point.type == "string" {
                #expect(value == Array(repeating: 0, count: point.size), "\(point.name)")
            } else {
                #expect(value == notImplementedByType[point.type], "\(point.name) (\(point.type))")
            }
        }
    }
}
