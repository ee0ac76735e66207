// swift-http-types are this library's currency types (`HTTPMethod`, `HTTPStatus` and
// `HTTPHeaders` are its `HTTPRequest.Method`, `HTTPResponse.Status` and `HTTPFields`), so
// `import MHDServers` brings them, with names such as `HTTPField.Name.contentType`, into scope.
@_exported import HTTPTypes
