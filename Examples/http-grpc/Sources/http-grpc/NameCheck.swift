import GRPCCore
import GRPCNIOTransportHTTP2Posix
import GRPCProtobuf
import SwiftProtobuf
import MHDServers
import ServiceLifecycle
import Logging

// Every public type of MHDServers, named unqualified beside GRPCCore, the NIO transport,
// GRPCProtobuf and SwiftProtobuf: an ambiguity would not compile.
private let names: [Any.Type] = [
    BoundAddress.self, BoundListener.self, ClosureHandler.self, FileError.self, HTTPError.self, HTTPHandler.self,
    HTTPHeaders.self, HTTPMethod.self, HTTPServer.self, HTTPServerContext.self, HTTPStatus.self, QueryParameters.self,
    (any ReadinessReporting).self, Request.self, Response.self, Router.self, Server.self, ServerConfig.self,
    ServerError.self, ServerInfo.self, (any ServerLifecycle).self, ServerManager.self, ServerStats.self, SideService.self,
]
