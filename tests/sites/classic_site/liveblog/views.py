from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from liveblog.models import Post


@csrf_exempt
@require_http_methods(["GET", "POST"])
def posts(request):
    if request.method == "POST":
        post = Post(title=request.POST["title"], body=request.POST.get("body", ""))
        post.save()
        return JsonResponse(post.as_dict(), status=201)
    return JsonResponse({"posts": [post.as_dict() for post in Post.objects.order_by("pk")]})
