<%@ page session="false" %><%
    // POST /logout: the container's logout (request.logout) and the end of the session (invalidate).
    if (!"POST".equals(request.getMethod())) {
        response.setHeader("Allow", "POST");
        response.sendError(405);
        return;
    }
    request.logout();
    jakarta.servlet.http.HttpSession current = request.getSession(false);
    if (current != null) {
        current.invalidate();
    }
    response.sendRedirect("/");
%>
