/// What a server reports through Read Device Identification (function 43, MEI type 14).
///
/// libmodbus 3.1.6 does not answer this function, so the server builds the answer itself. Basic
/// objects (0x00–0x02) are mandatory; regular ones (0x03–0x06) are sent when set. There are no
/// extended objects, so a request for the extended stream gets the regular one.
public struct DeviceIdentification: Sendable, Equatable {
    /// The MEI type of Read Device Identification.
    public static let meiType: UInt8 = 0x0E
    /// The longest object value: a response PDU holds at most 253 bytes, 7 of them header and 2 the
    /// object's id and length.
    public static let maximumValueLength = 244

    public var vendorName: String
    public var productCode: String
    public var majorMinorRevision: String
    public var vendorURL: String?
    public var productName: String?
    public var modelName: String?
    public var userApplicationName: String?

    public init(
        vendorName: String, productCode: String, majorMinorRevision: String, vendorURL: String? = nil,
        productName: String? = nil, modelName: String? = nil, userApplicationName: String? = nil
    ) {
        self.vendorName = vendorName
        self.productCode = productCode
        self.majorMinorRevision = majorMinorRevision
        self.vendorURL = vendorURL
        self.productName = productName
        self.modelName = modelName
        self.userApplicationName = userApplicationName
    }

    /// The objects in id order, each value cut to `maximumValueLength` bytes.
    public var objects: [(id: UInt8, value: [UInt8])] {
        let all: [(UInt8, String?)] = [
            (0x00, vendorName), (0x01, productCode), (0x02, majorMinorRevision), (0x03, vendorURL),
            (0x04, productName), (0x05, modelName), (0x06, userApplicationName),
        ]
        return all.compactMap { id, text in text.map { (id, Array($0.utf8.prefix(Self.maximumValueLength))) } }
    }

    /// The conformity level byte: regular identification (0x02) when any regular object is set,
    /// else basic (0x01); bit 7 says individual access is supported too.
    public var conformityLevel: UInt8 {
        objects.contains { $0.id >= 0x03 } ? 0x82 : 0x81
    }

    /// The response PDU to a request PDU (function code first), or the exception to answer.
    ///
    /// Read codes: 1 basic stream, 2 regular stream, 3 extended stream (answered as regular),
    /// 4 one object. A stream starts at the requested object, or at object 0 when that object is
    /// not part of the stream; when the objects do not fit one response, "more follows" is 0xFF and
    /// "next object id" says where the next request starts.
    public func response(to pdu: some Collection<UInt8>) -> Result<[UInt8], ModbusException> {
        let pdu = Array(pdu)
        guard pdu.count >= 2, pdu[0] == 0x2B, pdu[1] == Self.meiType else { return .failure(.illegalFunction) }
        guard pdu.count == 4 else { return .failure(.illegalDataValue) }
        let code = pdu[2]
        let requested = pdu[3]
        let objects = objects
        let header: (UInt8, UInt8, UInt8) -> [UInt8] = { more, next, count in
            [0x2B, Self.meiType, code, conformityLevel, more, next, count]
        }
        switch code {
        case 1, 2, 3:
            let last: UInt8 = code == 1 ? 0x02 : 0x7F
            let stream = objects.filter { $0.id <= last }
            var index = stream.firstIndex { $0.id == requested } ?? 0
            var body: [UInt8] = []
            var count: UInt8 = 0
            while index < stream.count, 7 + body.count + 2 + stream[index].value.count <= 253 {
                body += [stream[index].id, UInt8(stream[index].value.count)] + stream[index].value
                count += 1
                index += 1
            }
            let more = index < stream.count
            return .success(header(more ? 0xFF : 0x00, more ? stream[index].id : 0x00, count) + body)
        case 4:
            guard let object = objects.first(where: { $0.id == requested }) else { return .failure(.illegalDataAddress) }
            return .success(header(0x00, 0x00, 1) + [object.id, UInt8(object.value.count)] + object.value)
        default:
            return .failure(.illegalDataValue)
        }
    }
}
